"""The permission table: which role may do what. The one source for views, API and CLI."""

from apps.projects.choices import Role, WorkspaceKind

VIEW = "view"
CHANGE = "change"  # create and edit projects/applications inside the scope, edit the scope itself
DELETE = "delete"
MANAGE_MEMBERS = "manage_members"
MANAGE_CLUSTERS = "manage_clusters"


def deploy_perm(workspace: str) -> str:
    return f"deploy:{workspace}"


_ALL_DEPLOYS = {deploy_perm(w) for w in WorkspaceKind.values}

PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset({VIEW, CHANGE, DELETE, MANAGE_MEMBERS, MANAGE_CLUSTERS, *_ALL_DEPLOYS}),
    Role.LEAD: frozenset({VIEW, CHANGE, MANAGE_MEMBERS, *_ALL_DEPLOYS}),
    Role.DEVELOPER: frozenset({VIEW, CHANGE, deploy_perm("DEV"), deploy_perm("TEST")}),
    Role.OPS: frozenset({VIEW, MANAGE_CLUSTERS, *_ALL_DEPLOYS}),
    Role.GUEST: frozenset({VIEW}),
}

ALL_PERMISSIONS = sorted(set().union(*PERMISSIONS.values()))


def role_allows(role: str, perm: str) -> bool:
    return perm in PERMISSIONS.get(role, frozenset())


def role_within(role: str, held: set[str] | frozenset[str]) -> bool:
    """Whether `role` grants nothing beyond the permissions in `held` (what "at or below" means:
    developer and ops are not below each other, lead is not above ops, which manages clusters)."""
    return PERMISSIONS.get(role, frozenset()) <= held


def permission_table() -> list[dict]:
    """Rows for the permissions page and the API: one per permission, a flag per role."""
    return [
        {"permission": perm, "roles": {role: perm in PERMISSIONS[role] for role in Role.values}}
        for perm in ALL_PERMISSIONS
    ]
