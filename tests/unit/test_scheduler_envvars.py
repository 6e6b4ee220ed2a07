"""Run-time variables (SPEC.md): discovery, SELF_*/DICE_*, and addon variables per type."""

from __future__ import annotations

from scheduler.base import Overcommit, RuntimeRef
from scheduler.envvars import Endpoint, addon_envs, discovery_envs, env_name, self_envs
from scheduler.resources import allocate

RT = RuntimeRef("acme", "shop", "web", "STAGING", "feature-x")


def test_env_name():
    assert env_name("my-svc") == "MY_SVC" and env_name("a.b") == "A_B"


def test_discovery():
    envs = discovery_envs({"user-api": Endpoint("user-api.ns.svc.cluster.local", (8080, 9090)), "db": Endpoint("db", ())})
    assert envs == {
        "USER_API_HOST": "user-api.ns.svc.cluster.local",
        "USER_API_PORT": "8080",
        "USER_API_PORT0": "8080",
        "USER_API_PORT1": "9090",
        "DB_HOST": "db",
    }


def test_self_and_dice_variables():
    alloc = allocate(1, 512, None, None, Overcommit(cpu_ratio=2), "STAGING")
    envs = self_envs(RT, "api", "api.ns.svc.cluster.local", 8080, "prod-cluster", alloc)
    assert envs["SELF_HOST"] == "api.ns.svc.cluster.local"
    assert envs["SELF_PORT"] == "8080" and envs["SELF_URL"] == "http://api.ns.svc.cluster.local:8080"
    assert envs["DICE_WORKSPACE"] == "STAGING" and envs["DICE_RUNTIME_NAME"] == "feature-x"
    assert envs["DICE_PROJECT_NAME"] == "shop" and envs["DICE_APPLICATION_NAME"] == "web"
    assert envs["DICE_CLUSTER_NAME"] == "prod-cluster"
    assert envs["DICE_CPU_REQUEST"] == "0.5" and envs["DICE_CPU_LIMIT"] == "1"
    assert envs["DICE_MEM_REQUEST"] == "512" and envs["DICE_MEM_LIMIT"] == "512"


def test_self_without_port():
    alloc = allocate(1, 512, None, None, Overcommit(), "DEV")
    envs = self_envs(RT, "worker", "worker.ns", None, "c", alloc)
    assert "SELF_PORT" not in envs and "SELF_URL" not in envs


VALUES = {"host": "h", "port": "1", "username": "u", "password": "p", "database": "d", "servers": "h:1"}


def test_addon_variables_per_type():
    assert addon_envs("mysql", None, VALUES) == {
        "MYSQL_HOST": "h", "MYSQL_PORT": "1", "MYSQL_USERNAME": "u", "MYSQL_PASSWORD": "p", "MYSQL_DATABASE": "d"}
    assert addon_envs("redis", None, VALUES) == {"REDIS_HOST": "h", "REDIS_PORT": "1", "REDIS_PASSWORD": "p"}
    assert addon_envs("postgresql", None, VALUES) == {
        "POSTGRES_HOST": "h", "POSTGRES_PORT": "1", "POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p",
        "POSTGRES_DATABASE": "d"}
    assert addon_envs("kafka", None, VALUES)["KAFKA_SERVERS"] == "h:1"


def test_addon_prefix_from_as():
    assert addon_envs("mysql", "order_db", VALUES)["ORDER_DB_HOST"] == "h"


def test_custom_addon_values():
    assert addon_envs("custom", "PAY", {"url": "x", "app-key": "k"}) == {"PAY_URL": "x", "PAY_APP_KEY": "k"}


# ---- a data engine's job: one rule for its environment and its secret names ------------------

ENGINE_JOB = """
version: "2.0"
envs:
  SHARED: file
  POSTGRES_PASSWORD: from-the-file
jobs:
  load:
    engine: spark
    resource: job.py
    envs:
      NOTE: "note is ((NOTE_KEY))"
      PLAIN: plain
"""


def _engine_group(**kwargs):
    from diceyml import parse_dice_yml
    from scheduler.base import ServiceGroup

    return ServiceGroup(RT, parse_dice_yml(ENGINE_JOB, workspace="STAGING"), cluster_name="main-cluster",
                        secret_configs={"NOTE_KEY": "n0te"}, **kwargs)


def test_an_engine_job_without_the_runtimes_cluster_gets_the_file_configs_console_and_platform():
    from scheduler.envvars import engine_job_env

    group = _engine_group(variables={"PLAIN": "console", "SHOWN": "yes"}, secret_variables={"TOKEN": "t0k"})
    env = engine_job_env(group, "load")
    assert env.envs["NOTE"] == "note is n0te" and env.envs["PLAIN"] == "console" and env.envs["SHARED"] == "file"
    assert env.envs["TOKEN"] == "t0k" and env.envs["SHOWN"] == "yes"
    assert env.envs["DICE_WORKSPACE"] == "STAGING" and env.envs["DICE_SERVICE_NAME"] == "load"
    assert env.envs["DICE_CLUSTER_NAME"] == "main-cluster"
    # secret: the filled `((KEY))` and the secret console variable; not the file's literal password
    assert env.secret == {"NOTE", "TOKEN"}


def test_an_engine_job_given_by_the_runtimes_cluster_keeps_its_secret_names():
    from scheduler.base import JobEnv
    from scheduler.envvars import data_job_env, engine_job_env, platform_envs

    group = _engine_group(variables={"NOTE": "console wins"})
    shared = {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PASSWORD": "addon-pw", "REDIS_PASSWORD": "r-pw"}
    given = data_job_env(group, "load", shared, {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}, "main-cluster")
    # precedence: console > the file's envs > the addons' variables > discovery; DICE_* over all
    assert given.envs["POSTGRES_PASSWORD"] == "from-the-file" and given.envs["REDIS_PASSWORD"] == "r-pw"
    assert given.envs["NOTE"] == "console wins" and given.envs["POSTGRES_HOST"] == "127.0.0.1"
    assert {k: given.envs[k] for k in platform_envs(RT, "load", "x") if k != "DICE_CLUSTER_NAME"} == \
        {k: v for k, v in platform_envs(RT, "load", "x").items() if k != "DICE_CLUSTER_NAME"}
    # an addon's password is secret unless the file or the console replaced it; a `((KEY))` the
    # console replaced is the console's plain value
    assert given.secret == {"REDIS_PASSWORD"}
    routed = _engine_group(variables={"NOTE": "console wins"}, job_envs={"load": given})
    assert engine_job_env(routed, "load") == JobEnv(envs=given.envs, secret=given.secret)
