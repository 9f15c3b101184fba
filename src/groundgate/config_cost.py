"""The ``[cost]`` section: the monthly fixed cost of running Groundgate, which
``groundgate report cost`` adds to the spend it projects from the traces. Kept beside
``config.py``, which imports it, as ``config_retention.py`` is.

A small table of deployments, one row per way of running it, and the one to price::

    [cost]
    deployment = "scale-out"            # the row the report uses (--deployment overrides it)

    [cost.deployments.scale-out]
    replicas = 3                        # gateway processes/VMs/pods, at least
    usd_per_replica_month = 70.0        # one replica's machine
    redis_usd_month = 50.0              # the shared cache and limits (0: none)
    postgres_usd_month = 150.0          # the shared store (0: SQLite)
    requests_per_replica_month = 0      # capacity of one replica (0: `replicas` at any volume)

The built-in rows are examples, not quotes: ``embedded`` (one small VM, SQLite, no services)
and ``scale-out`` (three replicas over managed Redis and PostgreSQL). A row in the file
overrides the keys it names and may add new rows.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DeploymentCost(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    replicas: int = Field(1, ge=1)
    usd_per_replica_month: float = Field(0.0, ge=0)
    redis_usd_month: float = Field(0.0, ge=0)
    postgres_usd_month: float = Field(0.0, ge=0)
    # Requests one replica serves in a month. When set, a projection at a volume beyond
    # ``replicas`` times this adds replicas; 0 keeps ``replicas`` at any volume.
    requests_per_replica_month: int = Field(0, ge=0)

    def replicas_for(self, requests_per_month: int) -> int:
        if self.requests_per_replica_month == 0:
            return self.replicas
        return max(self.replicas, math.ceil(requests_per_month / self.requests_per_replica_month))

    def usd_per_month(self, requests_per_month: int) -> float:
        replicas = self.replicas_for(requests_per_month)
        return (
            replicas * self.usd_per_replica_month + self.redis_usd_month + self.postgres_usd_month
        )


# Examples (USD per month, list prices of small cloud instances and managed services in 2025):
# edit them to your bills.
_DEFAULT_DEPLOYMENTS: dict[str, dict[str, Any]] = {
    # One VM (2 vCPU, 4 GiB) running the gateway on SQLite with the in-process cache.
    "embedded": {"replicas": 1, "usd_per_replica_month": 40.0},
    # Three replicas behind a load balancer, a small managed Redis and PostgreSQL.
    "scale-out": {
        "replicas": 3,
        "usd_per_replica_month": 70.0,
        "redis_usd_month": 50.0,
        "postgres_usd_month": 150.0,
    },
}


class CostConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The row of ``deployments`` whose fixed cost the report adds.
    deployment: str = "embedded"
    deployments: dict[str, DeploymentCost] = Field(
        default_factory=lambda: {k: DeploymentCost(**v) for k, v in _DEFAULT_DEPLOYMENTS.items()}
    )

    @model_validator(mode="before")
    @classmethod
    def _over_the_examples(cls, data: Any) -> Any:
        """``[cost.deployments.embedded]`` naming one key keeps the example's others."""
        if not isinstance(data, dict):
            return data
        given = data.get("deployments")
        if given is None or not isinstance(given, dict):
            return data
        merged: dict[str, Any] = {k: dict(v) for k, v in _DEFAULT_DEPLOYMENTS.items()}
        for name, row in given.items():
            merged[name] = {**merged.get(name, {}), **row} if isinstance(row, dict) else row
        return {**data, "deployments": merged}

    @model_validator(mode="after")
    def _chosen_exists(self) -> CostConfig:
        if self.deployment not in self.deployments:
            known = ", ".join(sorted(self.deployments))
            raise ValueError(f"deployment {self.deployment!r} is not in cost.deployments ({known})")
        return self
