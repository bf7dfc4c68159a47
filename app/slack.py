"""Slack: answers to mentions and direct messages in their thread, ratings from reactions, corrections from experts.

Events reach one bolt `App` over HTTP (POST /slack/events, app/http/routes/slack.py) or Socket Mode (`lorag slack`).
Slack users are colleagues, so questions search public and internal documents.

Choices worth knowing:
- Slack wants an acknowledgement within 3 s and an answer takes longer on a CPU: bolt acknowledges each event at
  once (process_before_response=False) and runs the listeners on a small thread pool (LORAG_SLACK__WORKERS).
- Redeliveries. A request with X-Slack-Retry-Num (bolt mirrors Socket Mode's retry_attempt into it) is acknowledged
  and dropped. The header needs no state, so this holds across processes and restarts (API replicas, Socket Mode);
  the price is that an event whose first delivery reached no process at all is lost, and its author asks again.
  On top, an in-process memory of event ids and of (channel, ts) drops one message delivered as two events
  (app_mention plus message.im or message.channels). Those arrive together at the one process that holds the
  connection or the request, so the memory is not shared between processes.
- A bot answer carries its question, answer, model and citations in Slack's message metadata (event_type
  `lorag_answer`). A reaction or a correction reads them back with conversations.replies, so no table maps message
  timestamps to answers, nothing is stored for answers nobody rates, and every replica sees the same thing.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from lorag.core.audience import Audience
from lorag.core.errors import BackendUnavailable, ConfigError, Forbidden, InvalidInput, LoragError, NotFound
from lorag.core.logs import request_id
from lorag.core.settings import Settings, SlackSettings
from lorag.core.tables import Feedback, FeedbackKind
from lorag.retrieval.answer import Answerer, AnswerResult
from lorag.retrieval.types import Citation

logger = logging.getLogger(__name__)

ANSWER_EVENT = "lorag_answer"
NOTICE_EVENT = "lorag_notice"  # lorag's other messages (thanks, errors): never history, never rated
SOURCES_HEADER = "*Sources*"
HISTORY_MESSAGES = 10
MAX_QUESTION_CHARS = 2000
RATINGS = {"+1": 1, "thumbsup": 1, "-1": -1, "thumbsdown": -1}
_MARKUP = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")

Event = Mapping[str, Any]


class Host(Protocol):
    """What the Slack app uses of app.resources.Resources."""

    answerer: Answerer | None
    sessions: sessionmaker[Session]

    def resolve_model(self, model: str | None, kb: str | None) -> str | None: ...


@dataclass(frozen=True)
class SlackOptions:
    kb: str | None
    source_url: str | None
    correction_prefix: str
    handoff_text: str
    experts: frozenset[str]

    @classmethod
    def of(cls, section: SlackSettings) -> SlackOptions:
        handoff = section.handoff_text.replace("{correction_prefix}", section.correction_prefix)
        return cls(section.kb, section.source_url, section.correction_prefix, handoff, frozenset(section.experts))


# --- pure helpers ---------------------------------------------------------------------------------------------

def is_retry(headers: Mapping[str, Sequence[str]]) -> bool:
    """Whether Slack is redelivering an event (bolt's lower-cased headers, values as lists). Socket Mode's first
    delivery has retry_attempt 0, which bolt passes on as "0"."""
    return any(value.strip().isdigit() and int(value) > 0 for value in headers.get("x-slack-retry-num", []))


def plain_text(text: str) -> str:
    """Slack markup as a person reads it: mentions dropped, links as their label, entities decoded.

    >>> plain_text("<@U1> is &lt;€25&gt; in <https://x.example|the portal> for <#C1|support>?")
    'is <€25> in the portal for #support?'
    """

    def readable(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith(("@", "!")):  # users, @here
            return ""
        return ("#" + (label or target[1:])) if target.startswith("#") else (label or target)

    return html.unescape(re.sub(r"[ \t]{2,}", " ", _MARKUP.sub(readable, text))).strip()


def parse_correction(text: str, prefix: str) -> str | None:
    """The corrected answer when plain `text` starts with `prefix` (any case), else None.

    >>> parse_correction("Correction: €25 per contact.", "correction:")
    '€25 per contact.'
    """
    stripped = text.lstrip()
    return stripped[len(prefix):].strip() if stripped.lower().startswith(prefix.lower()) else None


def rating_of(reaction: str) -> int | None:
    """+1 or -1 for a thumbs reaction in any skin tone (`+1::skin-tone-3`); None for any other."""
    return RATINGS.get(reaction.split("::", 1)[0])


def escape(text: str) -> str:
    # Slack reads &, < and > as markup in message text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def source_line(citation: Citation, source_url: str | None) -> str:
    """`1. <url|Title — Section>` with a URL template, else `1. Title — Section (source)`."""
    section = " › ".join(part for part in citation.section if part != citation.title)
    label = " — ".join(part for part in (citation.title, section) if part) or citation.source
    label += f", p. {citation.page}" if citation.page else ""
    if not source_url:
        return f"{citation.marker}. {escape(label)} ({escape(citation.source)})"
    return f"{citation.marker}. <{source_url.replace('{source}', quote(citation.source))}|{escape(label)}>"


def format_answer(result: AnswerResult, source_url: str | None, handoff_text: str) -> str:
    """The verified answer and its numbered sources, or the abstention and the handoff (Slack mrkdwn)."""
    if result.abstained or not result.citations:
        return f"{escape(result.text)}\n{handoff_text}"  # the handoff is the admin's own mrkdwn
    lines = [escape(result.text), "", SOURCES_HEADER]
    return "\n".join(lines + [source_line(citation, source_url) for citation in result.citations])


def answer_metadata(question: str, result: AnswerResult, kb: str | None) -> dict[str, Any]:
    citations = [{"marker": c.marker, "chunk_id": c.chunk_id, "doc_id": c.doc_id, "title": c.title,
                  "source": c.source, "section": list(c.section), "page": c.page} for c in result.citations]
    # Citations travel as one JSON string: Slack's metadata payload takes no nulls.
    payload = {"question": question, "answer": result.text, "model": result.model, "kb": kb or "",
               "abstained": result.abstained, "citations": json.dumps(citations, ensure_ascii=False)}
    return {"event_type": ANSWER_EVENT, "event_payload": payload}


def answer_payload(message: Mapping[str, Any]) -> dict[str, Any] | None:
    metadata = message.get("metadata") or {}
    return metadata.get("event_payload") if metadata.get("event_type") == ANSWER_EVENT else None


def answer_kb(result: AnswerResult, configured: str | None) -> str | None:
    """The knowledge base feedback belongs to (nightly training selects it by kb): the configured one, else the
    cited chunks' one."""
    kbs = {chunk.id: chunk.kb for chunk in result.sources}
    return configured or next((kbs[c.chunk_id] for c in result.citations if c.chunk_id in kbs), None)


def history_of(messages: Sequence[Mapping[str, Any]], before_ts: str, prefix: str) -> list[dict[str, str]]:
    """A thread's turns before `before_ts`, oldest first: lorag's answers (from their metadata, so without the
    sources) as assistant turns and people's messages as user turns; notices, other bots and corrections left out."""
    turns = []
    for message in messages:
        if _ts(str(message.get("ts", ""))) >= _ts(before_ts):
            continue
        payload = answer_payload(message)
        if payload is not None:
            turns.append({"role": "assistant", "content": str(payload.get("answer", ""))})
        elif not (message.get("bot_id") or message.get("subtype")):
            text = plain_text(str(message.get("text", "")))
            if text and parse_correction(text, prefix) is None:
                turns.append({"role": "user", "content": text})
    return turns[-HISTORY_MESSAGES:]


def thread_of(event: Event) -> str:
    return str(event.get("thread_ts") or event["ts"])


def _ts(ts: str) -> tuple[int, int]:
    # Slack timestamps are "seconds.micros" strings; a float would round the micros away.
    seconds, _, micros = ts.partition(".")
    return int(seconds or 0), int(micros or 0)


class Seen:
    """A bounded, thread-safe memory of keys: `first(key)` is True once per key."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def first(self, key: str) -> bool:
        with self._lock:
            if key in self._keys:
                return False
            self._keys[key] = None
            if len(self._keys) > self._capacity:
                self._keys.popitem(last=False)
            return True


# --- the bot ----------------------------------------------------------------------------------------------------

class SlackBot:
    """Bolt listeners; each runs on the listener pool after bolt has acknowledged the event."""

    def __init__(self, host: Host, options: SlackOptions) -> None:
        self.host = host
        self.options = options
        self.seen = Seen()

    def skip_redeliveries(self, req: BoltRequest, next_: Callable[[], BoltResponse]) -> BoltResponse:
        """Global middleware, after bolt's signature check: acknowledge a redelivery without handling it."""
        event_id = str(req.body.get("event_id") or "")
        if is_retry(req.headers) or (event_id and not self.seen.first(f"event:{event_id}")):
            logger.info("slack: redelivery of event %s acknowledged and dropped", event_id or "-")
            return BoltResponse(status=200, body="")
        return next_()

    def on_mention(self, event: Event, body: Event, client: WebClient) -> None:
        self._handle(event, body, client)

    def on_message(self, event: Event, body: Event, client: WebClient) -> None:
        if event.get("subtype") or event.get("bot_id"):  # edits, joins, other bots
            return
        correction = parse_correction(plain_text(str(event.get("text", ""))), self.options.correction_prefix)
        # In channels only corrections matter here: questions to lorag arrive as app_mention.
        if event.get("channel_type") == "im" or (correction is not None and _is_reply(event)):
            self._handle(event, body, client)

    def on_reaction(self, event: Event, body: Event, client: WebClient, context: BoltContext) -> None:
        rating, item = rating_of(str(event.get("reaction", ""))), event.get("item") or {}
        if rating is None or item.get("type") != "message" or event.get("item_user") != context.bot_user_id:
            return
        request_id.set(f"slack-{body.get('event_id', '-')}")
        payload = answer_payload(self._message(client, str(item["channel"]), str(item["ts"])) or {})
        if payload is None:  # a notice, not an answer
            return
        self._record(FeedbackKind.RATING, payload, rating=rating,
                     comment=f"slack :{event.get('reaction')}: by {event.get('user')} in {item['channel']}")
        logger.info("slack: rating %+d recorded for the answer %s in %s", rating, item["ts"], item["channel"])

    def _handle(self, event: Event, body: Event, client: WebClient) -> None:
        # One message can come as two events (app_mention and message.*); the first one is handled.
        if not self.seen.first(f"message:{event['channel']}:{event['ts']}"):
            return
        request_id.set(f"slack-{body.get('event_id', '-')}")
        text = plain_text(str(event.get("text", "")))
        correction = parse_correction(text, self.options.correction_prefix)
        with _replying_on_failure(client, str(event["channel"]), thread_of(event)):
            if correction is not None and _is_reply(event):
                self._correct(client, event, correction)
            else:
                self._answer(client, event, text)

    def _answer(self, client: WebClient, event: Event, question: str) -> None:
        if not question or len(question) > MAX_QUESTION_CHARS:
            raise InvalidInput(f"ask me a question about the documentation, in at most {MAX_QUESTION_CHARS} "
                               "characters")
        if self.host.answerer is None:
            raise BackendUnavailable("the answering models are not loaded (LORAG_SERVER__LOAD_MODELS=false)")
        channel, thread = str(event["channel"]), thread_of(event)
        history = history_of(self._thread(client, channel, thread), str(event["ts"]),
                             self.options.correction_prefix) if _is_reply(event) else []
        kb = self.options.kb
        result = self.host.answerer.ask(question, kb=kb, audiences=Audience.INTERNAL.visible, history=history,
                                        model=self.host.resolve_model(None, kb))
        client.chat_postMessage(channel=channel, thread_ts=thread, unfurl_links=False, unfurl_media=False,
                                text=format_answer(result, self.options.source_url, self.options.handoff_text),
                                metadata=answer_metadata(question, result, answer_kb(result, kb)))
        logger.info("slack answer in %s thread %s: model=%s abstained=%s history=%d retrieved=[%s]", channel,
                    thread, result.model, result.abstained, len(history),
                    ", ".join(sorted({chunk.source for chunk in result.sources})))

    def _correct(self, client: WebClient, event: Event, correction: str) -> None:
        user, channel, thread = str(event.get("user", "")), str(event["channel"]), thread_of(event)
        if self.options.experts and user not in self.options.experts:
            raise Forbidden("only the experts' corrections are recorded (LORAG_SLACK__EXPERTS)")
        if not correction:
            raise InvalidInput(f"write the corrected answer after `{self.options.correction_prefix}`")
        earlier = [m for m in self._thread(client, channel, thread) if _ts(str(m.get("ts", ""))) < _ts(event["ts"])]
        answers = [payload for message in earlier if (payload := answer_payload(message)) is not None]
        if not answers:
            raise NotFound("there is no answer of mine earlier in this thread to correct")
        self._record(FeedbackKind.CORRECTION, answers[-1], correction=correction,
                     comment=f"slack correction by {user} in {channel}")
        notify(client, channel, thread, f"Thanks <@{user}>: your correction is recorded; "
                                        "tonight's training learns from it.")
        logger.info("slack: correction recorded in %s thread %s", channel, thread)

    def _thread(self, client: WebClient, channel: str, thread: str) -> list[dict[str, Any]]:
        response = client.conversations_replies(channel=channel, ts=thread, include_all_metadata=True, limit=200)
        return list(response.get("messages") or [])

    def _message(self, client: WebClient, channel: str, ts: str) -> dict[str, Any] | None:
        # `ts` may be a reply: conversations.replies finds it in its thread, narrowed to that one timestamp.
        response = client.conversations_replies(channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True,
                                                include_all_metadata=True)
        return next((m for m in response.get("messages") or [] if m.get("ts") == ts), None)

    def _record(self, kind: FeedbackKind, payload: Mapping[str, Any], *, rating: int | None = None,
                correction: str | None = None, comment: str) -> None:
        row = Feedback(id=str(uuid.uuid4()), kind=kind, task=None, kb=payload.get("kb") or None, audience="internal",
                       question=str(payload.get("question", "")), answer=payload.get("answer"), rating=rating,
                       correction=correction, comment=comment, model=payload.get("model"),
                       citations=payload.get("citations") or "[]", channel="slack")
        with self.host.sessions.begin() as session:
            session.add(row)


def _is_reply(event: Event) -> bool:
    return bool(event.get("thread_ts")) and event.get("thread_ts") != event.get("ts")


def notify(client: WebClient, channel: str, thread: str, text: str) -> None:
    client.chat_postMessage(channel=channel, thread_ts=thread, text=text,
                            metadata={"event_type": NOTICE_EVENT, "event_payload": {"kind": "notice"}})


@contextmanager
def _replying_on_failure(client: WebClient, channel: str, thread: str) -> Iterator[None]:
    """The listener's edge: a failure becomes a short reply in the thread, never silence."""
    try:
        yield
    except LoragError as exc:
        logger.warning("slack: %s", exc.message)
        notify(client, channel, thread, f"Sorry, I can't: {escape(exc.message)}.")
    except Exception:
        logger.exception("slack: handling a message in %s failed", channel)
        notify(client, channel, thread, "Sorry, something went wrong on my side; the server log has the details.")


def build_slack_app(host: Host, settings: Settings, *, socket_mode: bool = False) -> App:
    """The bolt App; it calls auth.test once, to learn its own user id."""
    section = settings.slack
    if section.bot_token is None or (section.signing_secret is None and not socket_mode):
        raise ConfigError("Slack needs LORAG_SLACK__BOT_TOKEN and, for the Events API, LORAG_SLACK__SIGNING_SECRET")
    bot = SlackBot(host, SlackOptions.of(section))
    client = WebClient(token=section.bot_token.get_secret_value(), base_url=section.api_url.rstrip("/") + "/")
    secret = section.signing_secret.get_secret_value() if section.signing_secret else ""
    try:
        app = App(client=client, signing_secret=secret, process_before_response=False,
                  request_verification_enabled=not socket_mode,
                  listener_executor=ThreadPoolExecutor(section.workers, thread_name_prefix="slack"))
    except BoltError as exc:
        raise ConfigError(f"Slack refused the bot token: {exc}") from None
    except OSError as exc:
        raise BackendUnavailable(f"Slack's Web API at {section.api_url} is unreachable: {exc}") from None
    app.middleware(bot.skip_redeliveries)
    app.event("app_mention")(bot.on_mention)
    app.event("message")(bot.on_message)
    app.event("reaction_added")(bot.on_reaction)
    return app


def run_socket_mode(settings: Settings) -> None:
    """`lorag slack`: the same app over Socket Mode, no public URL needed. With the embedded vector store run it
    instead of `lorag serve`, not beside it (one process may open the store)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from lorag.app.resources import open_resources

    section = settings.slack
    missing = [name for name, value in (("LORAG_SLACK__BOT_TOKEN (xoxb-...)", section.bot_token),
                                        ("LORAG_SLACK__APP_TOKEN (xapp-..., connections:write)", section.app_token))
               if value is None]
    if missing or section.app_token is None:
        raise ConfigError(f"Socket Mode needs {' and '.join(missing)}")
    resources = open_resources(settings)
    try:
        app = build_slack_app(resources, settings, socket_mode=True)
        SocketModeHandler(app, section.app_token.get_secret_value(), web_client=app.client).start()
    finally:
        resources.close()
