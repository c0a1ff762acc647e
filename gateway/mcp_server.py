"""Like-Opt as a Model Context Protocol server, on the official ``mcp`` SDK.

Tools ``search``, ``ask`` and ``list_documents``, and every document as a resource
(``likeopt://documents/{doc_id}``). One server definition runs two ways: over stdio (``likeopt mcp``, for
desktop clients such as Claude Desktop or Cursor; gateway.mcp_stdio) and over streamable HTTP at ``/mcp``, mounted
in the gateway (gateway.mcp_http). Either way it only calls the mesh over gRPC: answers go through generation_svc's
Answer (same caches, conversations and cancellation as the web UI), so MCP adds no second RAG pipeline.

A failed call (an empty query, an unknown conversation id, an unreachable service) comes back to the
client as a tool error (``isError``) naming the gRPC status, never as a crash of the server; so do bad arguments
(gateway.mcp_arguments).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

import grpc
from google.protobuf.json_format import MessageToDict
from mcp.server.mcpserver import MCPServer, ResourceSecurity
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ListResourcesResult, PaginatedRequestParams, ToolAnnotations
from mcp_types import Resource as MCPResource
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import HIDDEN_DETAILS, public_details
from gateway.mcp_arguments import StrictTool
from gateway.models import ConversationId, Query, query_text
from gateway.observe import first_text_timed
from likeopt.runtime.addresses import address_list
from likeopt.runtime.config import Config
from likeopt.runtime.contract import ANSWER_TOP_K, LIST_LIMIT, MODES, SEARCH_TOP_K, Mode, shown_id
from likeopt.runtime.grpc_client import open_channel
from likeopt.v1 import generation_pb2, generation_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

DOCUMENT_URI = "likeopt://documents/{+doc_id}"
"""Document ids may hold slashes (file paths): ``{+doc_id}`` takes them as they are."""
SEARCH_TIMEOUT_S = 10.0
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
INSTRUCTIONS = (
    "Like-Opt answers questions over the user's own documents. Use `ask` for a grounded answer with "
    "numbered citations [n]; use `search` to see the matching passages themselves; `list_documents` and the "
    "likeopt://documents/{doc_id} resources show what the corpus holds."
)

Question = query_text("question")
"""ask's question, checked as a query is but named as the tool names it."""


def document_uri(doc_id: str) -> str:
    """The resource URI of a document (characters outside RFC 3986's reserved set percent-encoded)."""
    return "likeopt://documents/" + quote(doc_id, safe=":/@!$&'()*+,;=")


@dataclass
class Mesh:
    """The gRPC stubs the MCP tools call, and the metadata (API key) every call carries."""

    retrieval: retrieval_pb2_grpc.RetrievalServiceStub
    """Searches (any replica)."""
    documents: retrieval_pb2_grpc.RetrievalServiceStub
    """ListDocuments and GetDocument (the writer, like index status)."""
    generation: generation_pb2_grpc.GenerationServiceStub
    answer_timeout_s: float = 60.0
    metadata: tuple[tuple[str, str], ...] = ()
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    written: Callable[[], int] = lambda: 0
    """The least index version searches and answers ask for (the gateway's Upstreams.least_version; none over stdio,
    which writes nothing)."""

    @classmethod
    def connect(cls, config: Config, token: str = "") -> Mesh:
        """Channels of its own, to the addresses in the settings (the services, or Envoy's port for all).

        A token (LIKEOPT_AUTH=jwt), else the API key, rides on every call: Envoy verifies the token and every
        read is its principal's; it needs the key for document reads always and for searches and answers when
        reads need the key. The services themselves ignore both.
        """
        channels = [
            open_channel(config.retrieval_addr),
            open_channel(address_list(config.retrieval_addr)[0]),
            open_channel(config.generation_addr),
        ]
        bearer = token or config.api_key.get_secret_value()
        metadata = (("authorization", f"Bearer {bearer}"),) if bearer else ()
        return cls(
            retrieval=retrieval_pb2_grpc.RetrievalServiceStub(channels[0]),
            documents=retrieval_pb2_grpc.RetrievalServiceStub(channels[1]),
            generation=generation_pb2_grpc.GenerationServiceStub(channels[2]),
            answer_timeout_s=config.answer_timeout_s,
            metadata=metadata,
            channels=channels,
        )

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels))


class Passage(BaseModel):
    doc_id: str
    chunk_id: str
    title: str
    text: str
    score: float
    uri: str = Field(description="The document's resource URI.")


class SearchResult(BaseModel):
    passages: list[Passage]
    index_version: int


class Citation(BaseModel):
    """A passage the answer cites as [n]; the fields of the chat API's citation events."""

    model_config = ConfigDict(extra="allow")

    n: int
    doc_id: str
    chunk_id: str
    title: str
    text: str


class Answer(BaseModel):
    answer: str = Field(description="The answer, with [n] markers pointing into citations.")
    citations: list[Citation]
    conversation_id: str = Field(description="Pass it back to `ask` to ask a follow-up in this conversation.")
    cached: bool
    no_answer: bool = Field(description="True when the documents do not cover the question: the answer says so.")
    support: float = Field(description="0..1: the share of the answer's sentences supported by the passages they cite.")


class DocumentInfo(BaseModel):
    id: str
    title: str
    metadata: dict[str, str]
    chunks: int
    uri: str


class DocumentPage(BaseModel):
    documents: list[DocumentInfo]
    next_after_id: str = Field(description="Pass as after_id for the next page; empty on the last page.")
    total: int


def tool_failure(exc: grpc.aio.AioRpcError) -> ToolError:
    """A gRPC failure as the tool error the client sees: what REST would say (never an internal error's text,
    nor gRPC's words about its channel, which name internal addresses)."""
    hidden = exc.code() in HIDDEN_DETAILS
    details = "internal error in Like-Opt; its logs have the details" if hidden else public_details(exc)
    return ToolError(f"{exc.code().name}: {details}")


async def answer_of(mesh: Mesh, request: generation_pb2.AnswerRequest) -> Answer:
    """Run one Answer call to its end; a cancelled tool call cancels it, which stops the model."""
    started = time.perf_counter()
    request.min_index_version = mesh.written()
    call = mesh.generation.Answer(request, timeout=mesh.answer_timeout_s, metadata=mesh.metadata)
    text: list[str] = []
    citations: list[Citation] = []
    try:
        async for event in first_text_timed(call, started):
            kind = event.WhichOneof("event")
            if kind == "delta":
                text.append(event.delta.text)
            elif kind == "citation":
                fields = MessageToDict(
                    event.citation, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
                )
                citations.append(Citation.model_validate(fields))
            elif kind == "error":
                raise ToolError(f"{event.error.code}: {event.error.message}")
            elif kind == "done":
                done = event.done
                return Answer(
                    answer="".join(text),
                    citations=citations,
                    conversation_id=done.conversation_id,
                    cached=done.cached,
                    no_answer=done.no_answer,
                    support=round(done.support, 3),
                )
    except grpc.aio.AioRpcError as exc:
        raise tool_failure(exc) from None
    finally:
        call.cancel()
    raise ToolError("UNAVAILABLE: the answer stream ended without an answer")


def passage_of(hit: retrieval_pb2.SearchHit) -> Passage:
    """A search hit as the search tool returns it, with the resource that opens its document."""
    return Passage(
        doc_id=hit.doc_id,
        chunk_id=hit.chunk_id,
        title=hit.title,
        text=hit.text,
        score=hit.score,
        uri=document_uri(hit.doc_id),
    )


async def search_result_of(m: Mesh, request: retrieval_pb2.SearchRequest) -> SearchResult:
    """The search tool's reply: retrieval_svc's hits as passages; a failed call becomes the tool's error."""
    try:
        reply = await m.retrieval.Search(request, timeout=SEARCH_TIMEOUT_S, metadata=m.metadata)
    except grpc.aio.AioRpcError as exc:
        raise tool_failure(exc) from None
    return SearchResult(passages=[passage_of(h) for h in reply.hits], index_version=reply.index_version)


async def document_page_of(m: Mesh, request: retrieval_pb2.ListDocumentsRequest) -> DocumentPage:
    """The list_documents tool's reply: a page of the listing, each document with the URI its resource is read at."""
    try:
        reply = await m.documents.ListDocuments(request, timeout=SEARCH_TIMEOUT_S, metadata=m.metadata)
    except grpc.aio.AioRpcError as exc:
        raise tool_failure(exc) from None
    documents = [
        DocumentInfo(id=d.id, title=d.title, metadata=dict(d.metadata), chunks=d.chunks, uri=document_uri(d.id))
        for d in reply.documents
    ]
    return DocumentPage(documents=documents, next_after_id=reply.next_after_id, total=reply.total)


def mesh_tools(mesh: Callable[[], Mesh]) -> list[Tool]:
    """search, ask and list_documents."""

    async def search(
        query: Annotated[Query, Field(description="What to look for, in plain words or keywords.")],
        top_k: Annotated[int, Field(ge=SEARCH_TOP_K.low, le=SEARCH_TOP_K.high, description="How many passages.")] = 5,
        mode: Mode = "hybrid",
        filters: Annotated[dict[str, str] | None, Field(description="Document metadata that must match.")] = None,
        per_document: Annotated[
            bool, Field(description="Each document once, its best passage: top_k then counts documents.")
        ] = False,
    ) -> SearchResult:
        """Find the passages of the user's documents that best match a query (hybrid BM25 + dense by default)."""
        m = mesh()
        request = retrieval_pb2.SearchRequest(
            query=query,
            top_k=top_k,
            mode=MODES[mode],
            filters=filters or {},
            per_document=per_document,
            min_index_version=m.written(),
        )
        return await search_result_of(m, request)

    async def ask(
        question: Annotated[Question, Field(description="The question, in plain words.")],
        conversation_id: Annotated[
            ConversationId, Field(description="Continue this conversation (from an earlier ask).")
        ] = "",
        top_k: Annotated[
            int, Field(ge=ANSWER_TOP_K.low, le=ANSWER_TOP_K.high, description="Passages to ground the answer on.")
        ] = ANSWER_TOP_K.default,
    ) -> Answer:
        """Answer a question from the user's documents, citing passages as [n]; follow-ups keep the conversation."""
        request = generation_pb2.AnswerRequest(query=question, conversation_id=conversation_id, top_k=top_k)
        return await answer_of(mesh(), request)

    async def list_documents(
        limit: Annotated[
            int, Field(ge=LIST_LIMIT.low, le=LIST_LIMIT.high, description="Most documents in the page.")
        ] = LIST_LIMIT.default,
        after_id: Annotated[str, Field(description="Start after this id (the last page's next_after_id).")] = "",
    ) -> DocumentPage:
        """List the documents in the corpus, in id order, a page at a time."""
        return await document_page_of(mesh(), retrieval_pb2.ListDocumentsRequest(limit=limit, after_id=after_id))

    # It stores a conversation turn, so not read-only; but it only adds one, and the spec's default for a tool
    # that writes is destructive, which makes clients ask the user to confirm every question.
    asks = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
    return [
        StrictTool.strict(search, READ_ONLY),
        StrictTool.strict(ask, asks),
        StrictTool.strict(list_documents, READ_ONLY),
    ]


def document_text(doc: retrieval_pb2.StoredDocument) -> str:
    """A document as Markdown: title, metadata, then its chunks as the index holds them (neighbouring
    chunks repeat a sentence or so: the original text is not kept)."""
    lines = [f"# {doc.title or doc.id}", "", f"- id: {doc.id}"]
    lines += [f"- {key}: {value}" for key, value in sorted(doc.metadata.items())]
    for chunk in doc.chunks:
        lines += ["", f"## [{chunk.chunk_id}]", "", chunk.text]
    return "\n".join(lines) + "\n"


def register_resources(server: MCPServer, mesh: Callable[[], Mesh]) -> None:
    """Every document as ``likeopt://documents/{doc_id}``."""

    # A document id is a key looked up in the index, never a path on disk: no path checks apply.
    @server.resource(DOCUMENT_URI, mime_type="text/markdown", security=ResourceSecurity(exempt_params={"doc_id"}))
    async def document(doc_id: str) -> str:
        """A document of the corpus: its title, metadata and text, chunk by chunk."""
        m = mesh()
        request = retrieval_pb2.GetDocumentRequest(id=doc_id)
        try:
            doc = await m.documents.GetDocument(request, timeout=SEARCH_TIMEOUT_S, metadata=m.metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise ResourceNotFoundError(f"no document with id {shown_id(doc_id)}") from None
            raise ResourceError(str(tool_failure(exc))) from None
        return document_text(doc)


RESOURCES_PER_PAGE = LIST_LIMIT.default
"""Documents per resources/list page; the next page is asked for with the cursor (the last id sent)."""


UNSERVED_METHODS = ("prompts/list", "prompts/get")
"""Methods the SDK's server registers whatever it holds; there are no prompts here, so neither is served."""


class LikeOptMCPServer(MCPServer[Any]):
    """The SDK's server, with resources/list paging through the documents the caller may read: the SDK lists only
    resources registered one by one, and a corpus is too large and changes too often for that.

    The SDK advertises a capability for each method it serves, on every protocol version (``initialize``,
    ``server/discover``), so what is advertised is what is served: no prompts, and no ``subscriptions/listen``
    stream (a stateless server answering each POST with one JSON body holds nothing open, and nothing here sends
    change notifications), hence no ``listChanged`` nor resource ``subscribe``.
    """

    def __init__(self, mesh: Callable[[], Mesh], **options: Any) -> None:
        super().__init__(subscriptions=False, **options)
        self._mesh = mesh
        handlers = self._lowlevel_server._request_handlers  # no public way to unregister a method the SDK added
        for method in UNSERVED_METHODS:
            handlers.pop(method, None)  # an SDK that no longer registers it: nothing to take away

    async def _handle_list_resources(self, ctx: Any, params: PaginatedRequestParams | None) -> ListResourcesResult:
        m = self._mesh()
        after_id = params.cursor if params is not None and params.cursor else ""
        request = retrieval_pb2.ListDocumentsRequest(limit=RESOURCES_PER_PAGE, after_id=after_id)
        try:
            reply = await m.documents.ListDocuments(request, timeout=SEARCH_TIMEOUT_S, metadata=m.metadata)
        except grpc.aio.AioRpcError as exc:
            raise MCPError(INTERNAL_ERROR, str(tool_failure(exc))) from None
        resources = [
            MCPResource(uri=document_uri(d.id), name=d.id, title=d.title or None, mime_type="text/markdown")
            for d in reply.documents
        ]
        return ListResourcesResult(resources=resources, next_cursor=reply.next_after_id or None)


def build_mcp_server(mesh: Callable[[], Mesh]) -> MCPServer[Any]:
    """The server; ``mesh`` gives the stubs at call time (the gateway opens its channels after start-up)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        own_version = version("like-opt")
    except PackageNotFoundError:
        own_version = "0"
    server = LikeOptMCPServer(
        mesh, name="like-opt", title="Like-Opt", instructions=INSTRUCTIONS, version=own_version, tools=mesh_tools(mesh)
    )
    register_resources(server, mesh)
    return server
