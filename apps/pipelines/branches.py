"""Which workspace a branch's pushes go to (the project's branch rules, matched with the providers'
glob rules), and the name of the project config holding the webhook secret. Both the services
(saving rules and secrets) and the triggers (runs from pushes) read them: a module of its own keeps
those two from importing each other."""

from __future__ import annotations

from apps.pipelines.models import BranchRule
from pipelineyml.globs import glob_match

WEBHOOK_SECRET_KEY = "webhook_secret"


def rule_for_branch(project_id: int, branch: str | None) -> tuple[str | None, BranchRule | None]:
    """(workspace, the rule that chose it): DEV and no rule for a project without rules; (None, None)
    when the project has rules and none matches."""
    rules = list(BranchRule.objects.filter(project_id=project_id).select_related("created_by")
                 .order_by("priority", "id"))
    if not rules:
        return "DEV", None
    for rule in rules:
        if branch is not None and glob_match(rule.pattern, branch):
            return rule.workspace, rule
    return None, None


def workspace_for_branch(project_id: int, branch: str | None) -> str | None:
    return rule_for_branch(project_id, branch)[0]
