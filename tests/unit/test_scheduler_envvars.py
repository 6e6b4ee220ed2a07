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
