"""Settings of every process, read from ``LIKEOPT_*`` environment variables.

Each setting is declared once, as a typed field of :class:`Config`: its default, its bounds, its meaning
and the processes that read it. The README's table (:func:`settings_table`), Envoy's values
(likeopt.ops.envoy.values), the launcher's check of everything it hands its children and each process's own
check at start (:meth:`Config.for_process`) all derive from those declarations; a test checks the README.

The fields are grouped by topic, one module each, and combined into :class:`Config` in ``settings.py``:

- ``network.py``: host, ports, metrics ports and the addresses clients use;
- ``retrieval.py``: retrieval_svc's store (embedded or Milvus), its search, read-only replicas;
- ``caching.py``: cache_svc's Redis, the cache's deadlines and sizes, the near caches;
- ``generation.py``: generation_svc's backend, model, answer bounds, conversations and feedback;
- ``identity.py``: the API key, JWTs and their claims;
- ``ingress.py``: what Envoy's public port lets through, and TLS;
- ``operations.py``: what ``likeopt up`` keeps, traces and logs.

Around them: ``fields.py`` (how a setting is declared), ``processes.py`` (who reads one),
``errors.py`` (how a bad one is reported), ``table.py`` (the README's table), ``command_line.py`` (a
service's ``--help``: the settings it reads), ``redis_urls.py``,
``envoy_text.py`` and ``jwks.py`` (checks some settings share). Import from here: this module is the one
place the rest of the code base takes settings from.
"""

from __future__ import annotations

from likeopt.runtime.config.command_line import take_no_arguments
from likeopt.runtime.config.errors import SettingsError
from likeopt.runtime.config.generation import LOCAL_MAX_TOKENS, MAX_TOKENS
from likeopt.runtime.config.network import LISTENING_PORTS, metrics_port
from likeopt.runtime.config.processes import CACHE, ENVOY, GATEWAY, GENERATION, PROCESSES, RETRIEVAL, STOP_GRACE_S
from likeopt.runtime.config.redis_urls import redis_seed_nodes
from likeopt.runtime.config.settings import Config, env_name, env_names, read_by, setting_default, settings_or_exit
from likeopt.runtime.config.table import settings_table

__all__ = [
    "CACHE",
    "ENVOY",
    "GATEWAY",
    "GENERATION",
    "LISTENING_PORTS",
    "LOCAL_MAX_TOKENS",
    "MAX_TOKENS",
    "PROCESSES",
    "RETRIEVAL",
    "STOP_GRACE_S",
    "Config",
    "SettingsError",
    "env_name",
    "env_names",
    "metrics_port",
    "read_by",
    "redis_seed_nodes",
    "setting_default",
    "settings_or_exit",
    "settings_table",
    "take_no_arguments",
]
