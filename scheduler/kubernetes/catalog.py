"""The operators the Kubernetes driver can use: the one table the renderer, the capability report
and `dice spec render --operators` read.

An operator counts as installed only when every CRD it lists is there: the renderer makes all
of those kinds (Strimzi: a Kafka and its KafkaNodePool; the OT Redis operator: Redis or
RedisReplication), so a cluster with only some of them cannot run the addon through it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class Operator:
    key: str  # the short name (`dice spec render --operators cnpg,...`)
    label: str  # what the console shows
    crds: tuple[str, ...]  # every CRD the renderer needs from it
    makes: str  # what it gives: an addon type, or a feature ("broadcast jobs")

    def installed(self, found: Collection[str]) -> bool:
        return all(crd in found for crd in self.crds)

    def missing(self, found: Collection[str]) -> list[str]:
        return [crd for crd in self.crds if crd not in found]


OPERATORS: dict[str, Operator] = {op.key: op for op in (
    Operator("cnpg", "CloudNativePG (PostgreSQL)", ("clusters.postgresql.cnpg.io",), "postgresql"),
    Operator("mysql-operator", "MySQL InnoDBCluster", ("innodbclusters.mysql.oracle.com",), "mysql"),
    Operator("ot-redis", "OT Redis operator",
             ("redis.redis.redis.opstreelabs.in", "redisreplications.redis.redis.opstreelabs.in"), "redis"),
    Operator("eck", "ECK (Elasticsearch)", ("elasticsearches.elasticsearch.k8s.elastic.co",), "elasticsearch"),
    Operator("strimzi", "Strimzi (Kafka)", ("kafkas.kafka.strimzi.io", "kafkanodepools.kafka.strimzi.io"), "kafka"),
    Operator("rabbitmq", "RabbitMQ cluster operator", ("rabbitmqclusters.rabbitmq.com",), "rabbitmq"),
    Operator("kruise", "OpenKruise BroadcastJob", ("broadcastjobs.apps.kruise.io",), "broadcast jobs"),
    # spark-submit jobs become SparkApplications (scheduler/spark/operator.py)
    Operator("spark-operator", "Kubeflow Spark operator (SparkApplication)",
             ("sparkapplications.sparkoperator.k8s.io",), "spark applications"),
    # `engine: flink` services become FlinkDeployments, the flink action a FlinkDeployment or a
    # FlinkSessionJob (scheduler/flink/operator.py)
    Operator("flink-operator", "Apache Flink Kubernetes Operator (FlinkDeployment, FlinkSessionJob)",
             ("flinkdeployments.flink.apache.org", "flinksessionjobs.flink.apache.org"), "flink jobs"),
)}


def crds_of(names: Collection[str]) -> set[str]:
    """The CRD names meant by operator short names (a name with a dot is taken as a CRD itself)."""
    out: set[str] = set()
    for name in names:
        out.update(OPERATORS[name].crds if name in OPERATORS else (name,))
    return out


def all_crds() -> frozenset[str]:
    return frozenset(crd for op in OPERATORS.values() for crd in op.crds)
