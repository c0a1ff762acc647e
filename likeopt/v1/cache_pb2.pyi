from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetRequest(_message.Message):
    __slots__ = ("namespace", "key")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("found", "value", "layer", "l2_unreached")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    L2_UNREACHED_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    layer: str
    l2_unreached: bool
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ..., layer: _Optional[str] = ..., l2_unreached: _Optional[bool] = ...) -> None: ...

class GetManyRequest(_message.Message):
    __slots__ = ("namespace", "keys")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class GetManyResponse(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, bytes]
    def __init__(self, values: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class SetRequest(_message.Message):
    __slots__ = ("namespace", "key", "value", "ttl_seconds")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    value: bytes
    ttl_seconds: int
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[bytes] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class SetResponse(_message.Message):
    __slots__ = ("stored_l2",)
    STORED_L2_FIELD_NUMBER: _ClassVar[int]
    stored_l2: bool
    def __init__(self, stored_l2: _Optional[bool] = ...) -> None: ...

class SetManyRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[SetRequest]
    def __init__(self, entries: _Optional[_Iterable[_Union[SetRequest, _Mapping]]] = ...) -> None: ...

class SetManyResponse(_message.Message):
    __slots__ = ("stored_l2",)
    STORED_L2_FIELD_NUMBER: _ClassVar[int]
    stored_l2: int
    def __init__(self, stored_l2: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("namespace", "keys")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "l2_unreached")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    L2_UNREACHED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    l2_unreached: bool
    def __init__(self, deleted: _Optional[int] = ..., l2_unreached: _Optional[bool] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LayerStats(_message.Message):
    __slots__ = ("hits", "misses")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    hits: int
    misses: int
    def __init__(self, hits: _Optional[int] = ..., misses: _Optional[int] = ...) -> None: ...

class NamespaceStats(_message.Message):
    __slots__ = ("namespace", "l1", "l2")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    L1_FIELD_NUMBER: _ClassVar[int]
    L2_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    l1: LayerStats
    l2: LayerStats
    def __init__(self, namespace: _Optional[str] = ..., l1: _Optional[_Union[LayerStats, _Mapping]] = ..., l2: _Optional[_Union[LayerStats, _Mapping]] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("hits", "misses", "hit_ratio", "l1_entries", "l1_bytes", "l1_evictions", "l2_healthy", "namespaces", "l2_configured")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    HIT_RATIO_FIELD_NUMBER: _ClassVar[int]
    L1_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    L1_BYTES_FIELD_NUMBER: _ClassVar[int]
    L1_EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    L2_HEALTHY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    L2_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    hits: int
    misses: int
    hit_ratio: float
    l1_entries: int
    l1_bytes: int
    l1_evictions: int
    l2_healthy: bool
    namespaces: _containers.RepeatedCompositeFieldContainer[NamespaceStats]
    l2_configured: bool
    def __init__(self, hits: _Optional[int] = ..., misses: _Optional[int] = ..., hit_ratio: _Optional[float] = ..., l1_entries: _Optional[int] = ..., l1_bytes: _Optional[int] = ..., l1_evictions: _Optional[int] = ..., l2_healthy: _Optional[bool] = ..., namespaces: _Optional[_Iterable[_Union[NamespaceStats, _Mapping]]] = ..., l2_configured: _Optional[bool] = ...) -> None: ...
