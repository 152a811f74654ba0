"""The REST API under `/api/v10`: what a bot calls, stored so tests can assert on it.

Every response is `Content-Type: application/json` exactly (discord.py only parses that) and carries
X-RateLimit-* headers; `RateLimits.inject(...)` makes chosen requests answer 429 first;
`Delays.inject(...)` holds chosen requests before they are handled (a slow Discord).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakes.discord.channels import GuildChannels, require_permissions
from tests.fakes.discord.model import (
    ATTACH_FILES,
    MANAGE_WEBHOOKS,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    Account,
    now_iso,
    snowflake,
)
from tests.fakes.discord.records import Attachment, InteractionRecord, StoredMessage, Webhook

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

log = logging.getLogger(__name__)

API = "/api/v10"


class ApiError(Exception):
    """Raised by handlers; the middleware turns it into Discord's JSON error body."""

    def __init__(self, status: int, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def http_error(status: int, message: str, code: int = 0) -> ApiError:
    return ApiError(status, message, code)


def json_response(data: object, status: int = 200, headers: dict | None = None) -> web.Response:
    body = b"" if status == 204 else json.dumps(data).encode()
    response = web.Response(body=body, status=status, headers=headers or {})
    if status != 204:
        response.headers["Content-Type"] = "application/json"
    return response


@dataclass
class _Injection:
    method: str
    pattern: re.Pattern
    retry_after: float
    remaining: int
    scope: str
    is_global: bool


class RateLimits:
    """Rate-limit headers on every response, and injected 429s for chosen routes."""

    def __init__(self) -> None:
        self._injections: list[_Injection] = []
        self.hits: list[tuple[str, str, float]] = []  # (method, path, monotonic time) of every 429

    def inject(
        self,
        method: str,
        path_regex: str,
        *,
        retry_after: float = 0.25,
        count: int = 1,
        scope: str = "user",
        is_global: bool = False,
    ) -> None:
        """The next `count` requests matching `method` and `path_regex` (searched in the path after
        /api/v10) get 429 with `retry_after` seconds (`is_global`: a global rate limit)."""
        self._injections.append(
            _Injection(
                method.upper(), re.compile(path_regex), retry_after, count, "global" if is_global else scope, is_global
            )
        )

    def check(self, method: str, path: str) -> web.Response | None:
        for injection in self._injections:
            if injection.remaining > 0 and injection.method == method and injection.pattern.search(path):
                injection.remaining -= 1
                self.hits.append((method, path, time.monotonic()))
                headers = {
                    "Retry-After": str(max(1, round(injection.retry_after))),
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": f"{injection.retry_after:.3f}",
                    "X-RateLimit-Reset": f"{time.time() + injection.retry_after:.3f}",
                    "X-RateLimit-Bucket": "fake-bucket",
                    "X-RateLimit-Scope": injection.scope,
                    "Via": "1.1 google",  # discord.py treats a 429 without Via as a Cloudflare ban
                }
                if injection.is_global:
                    headers["X-RateLimit-Global"] = "true"
                body = {
                    "message": "You are being rate limited.",
                    "retry_after": injection.retry_after,
                    "global": injection.is_global,
                }
                return json_response(body, 429, headers)
        return None

    @staticmethod
    def headers() -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": "fake-bucket",
        }


@dataclass
class _Delay:
    method: str
    pattern: re.Pattern
    seconds: float
    remaining: int


class Delays:
    """Chosen requests wait before they are handled, so a client's request is in flight meanwhile."""

    def __init__(self) -> None:
        self._delays: list[_Delay] = []
        self.held: list[tuple[str, str, float]] = []  # (method, path, monotonic time) of every held request

    def inject(self, method: str, path_regex: str, *, seconds: float, count: int = 1_000_000) -> None:
        """The next `count` requests matching `method` and `path_regex` (searched in the path after
        /api/v10) are handled `seconds` after they arrive."""
        self._delays.append(_Delay(method.upper(), re.compile(path_regex), seconds, count))

    async def hold(self, method: str, path: str) -> None:
        for delay in self._delays:
            if delay.remaining > 0 and delay.method == method and delay.pattern.search(path):
                delay.remaining -= 1
                self.held.append((method, path, time.monotonic()))
                await asyncio.sleep(delay.seconds)
                return


class Rest:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.messages: dict[int, list[StoredMessage]] = {}
        self.webhooks: dict[int, Webhook] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.commands: dict[tuple[int, int | None], list[dict]] = {}  # (application, guild) -> commands
        self.requests: list[tuple[str, str]] = []
        self.rate_limits = RateLimits()
        self.delays = Delays()
        self.channels = GuildChannels(fake, self._caller)

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)
        self.channels.routes(app, API)
        r = app.router
        r.add_get(API + "/users/@me", self.me)
        r.add_get(API + "/oauth2/applications/@me", self.application)
        r.add_get(API + "/applications/@me", self.application)
        r.add_get(API + "/gateway", self.gateway)
        r.add_get(API + "/gateway/bot", self.gateway)
        r.add_post(API + "/channels/{channel}/messages", self.create_message)
        r.add_get(API + "/channels/{channel}/messages/{message}", self.get_message)
        r.add_patch(API + "/channels/{channel}/messages/{message}", self.edit_message)
        r.add_delete(API + "/channels/{channel}/messages/{message}", self.delete_message)
        r.add_post(API + "/channels/{channel}/typing", self.no_content)
        r.add_post(API + "/channels/{channel}/webhooks", self.create_webhook)
        r.add_get(API + "/channels/{channel}/webhooks", self.list_webhooks)
        r.add_get(API + "/guilds/{guild}/webhooks", self.list_webhooks)
        r.add_get(API + "/webhooks/{webhook}", self.get_webhook)
        r.add_post(API + "/webhooks/{webhook}/{token}", self.execute_webhook)
        r.add_get(API + "/webhooks/{webhook}/{token}/messages/{message}", self.get_webhook_message)
        r.add_patch(API + "/webhooks/{webhook}/{token}/messages/{message}", self.edit_webhook_message)
        r.add_delete(API + "/webhooks/{webhook}/{token}/messages/{message}", self.delete_webhook_message)
        r.add_post(API + "/interactions/{interaction}/{token}/callback", self.interaction_callback)
        r.add_get(API + "/applications/{app}/commands", self.get_commands)
        r.add_put(API + "/applications/{app}/commands", self.put_commands)
        r.add_post(API + "/applications/{app}/commands", self.post_command)
        r.add_get(API + "/applications/{app}/guilds/{guild}/commands", self.get_commands)
        r.add_put(API + "/applications/{app}/guilds/{guild}/commands", self.put_commands)
        r.add_post(API + "/applications/{app}/guilds/{guild}/commands", self.post_command)
        r.add_route("*", API + "/{tail:.*}", self.not_found)

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        path = request.path[len(API) :] if request.path.startswith(API) else request.path
        self.requests.append((request.method, path))
        await self.delays.hold(request.method, path)
        limited = self.rate_limits.check(request.method, path)
        if limited is not None:
            return limited
        try:
            response = await handler(request)
        except ApiError as error:
            response = json_response({"message": error.message, "code": error.code}, error.status)
        response.headers.update(self.rate_limits.headers())
        return response

    # -- helpers

    def _caller(self, request: web.Request) -> Account:
        auth = request.headers.get("Authorization", "")
        account = self.fake.account_by_token(auth.removeprefix("Bot ").strip())
        if account is None:
            raise http_error(401, "401: Unauthorized")
        return account

    async def _body(self, request: web.Request) -> tuple[dict, list[Attachment]]:
        """JSON body, or multipart `payload_json` + `files[n]` parts."""
        if request.content_type.startswith("multipart/"):
            payload: dict = {}
            files: list[Attachment] = []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                elif part.filename is not None:
                    files.append(Attachment(part.filename, part.headers.get("Content-Type"), bytes(await part.read())))
            return payload, files
        if request.can_read_body:
            return await request.json(), []
        return {}, []

    def _message(self, channel_id: int, author: dict, payload: dict, files: list[Attachment], **extra) -> StoredMessage:
        attachments = [
            {
                "id": str(snowflake()),
                "filename": f.filename,
                "size": len(f.data),
                "url": f"https://cdn.example.invalid/{f.filename}",
                "proxy_url": f"https://media.example.invalid/{f.filename}",
                "content_type": f.content_type,
            }
            for f in files
        ]
        data = {
            "id": str(snowflake()),
            "channel_id": str(channel_id),
            "guild_id": str((self.fake.guild_of_channel(channel_id) or self.fake.guild).id),
            "author": author,
            "content": payload.get("content") or "",
            "embeds": payload.get("embeds") or [],
            "components": payload.get("components") or [],
            "attachments": attachments,
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "type": 0,
            "flags": int(payload.get("flags") or 0),
            **extra,
        }
        message = StoredMessage(data, files)
        self.messages.setdefault(channel_id, []).append(message)
        return message

    def find_message(self, channel_id: int, message_id: int) -> StoredMessage:
        for message in self.messages.get(channel_id, []):
            if message.id == message_id and not message.deleted:
                return message
        raise http_error(404, "Unknown Message", 10008)

    @staticmethod
    def _edit(message: StoredMessage, payload: dict, files: list[Attachment]) -> dict:
        message.edits.append(payload)
        for key in ("content", "embeds", "components", "flags"):
            if key in payload:
                message.data[key] = payload[key]
        if files:
            message.files.extend(files)
        message.data["edited_timestamp"] = now_iso()
        return message.data

    # -- handlers

    async def no_content(self, request: web.Request) -> web.Response:
        self._caller(request)
        return json_response(None, 204)

    async def not_found(self, request: web.Request) -> web.Response:
        log.info("fake Discord has no route for %s %s", request.method, request.path)
        return json_response({"message": "404: Not Found", "code": 0}, 404)

    async def me(self, request: web.Request) -> web.Response:
        account = self._caller(request)
        return json_response({**account.user_payload(), "verified": True, "mfa_enabled": False, "bot": True})

    async def application(self, request: web.Request) -> web.Response:
        account = self._caller(request)
        return json_response(
            {
                "id": str(account.application_id),
                "name": account.name,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": account.user_payload(),
                "verify_key": "00" * 32,
                "flags": 0,
                "bot": account.user_payload(),
            }
        )

    async def gateway(self, request: web.Request) -> web.Response:
        data = {"url": self.fake.gateway_url}
        if request.path.endswith("/bot"):
            data.update(
                shards=1, session_start_limit={"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
            )
        return json_response(data)

    async def create_message(self, request: web.Request) -> web.Response:
        account = self._caller(request)
        channel_id = int(request.match_info["channel"])
        if self.fake.guild_of_channel(channel_id) is None:
            return json_response({"message": "Unknown Channel", "code": 10003}, 404)
        payload, files = await self._body(request)
        needed = VIEW_CHANNEL | SEND_MESSAGES | (ATTACH_FILES if files else 0)
        require_permissions(self.fake, account, channel_id, needed)
        return json_response(self._message(channel_id, account.user_payload(), payload, files).data)

    async def get_message(self, request: web.Request) -> web.Response:
        self._caller(request)
        message = self.find_message(int(request.match_info["channel"]), int(request.match_info["message"]))
        return json_response(message.data)

    async def edit_message(self, request: web.Request) -> web.Response:
        self._caller(request)
        message = self.find_message(int(request.match_info["channel"]), int(request.match_info["message"]))
        payload, files = await self._body(request)
        return json_response(self._edit(message, payload, files))

    async def delete_message(self, request: web.Request) -> web.Response:
        self._caller(request)
        self.find_message(int(request.match_info["channel"]), int(request.match_info["message"])).deleted = True
        return json_response(None, 204)

    async def create_webhook(self, request: web.Request) -> web.Response:
        account = self._caller(request)
        require_permissions(self.fake, account, int(request.match_info["channel"]), MANAGE_WEBHOOKS)
        payload, _ = await self._body(request)
        webhook = Webhook(
            id=snowflake(),
            token=f"webhook-token-{snowflake()}",
            channel_id=int(request.match_info["channel"]),
            name=payload.get("name") or "webhook",
            application_id=account.application_id,
        )
        self.webhooks[webhook.id] = webhook
        return json_response({**webhook.payload(self.fake.guild.id), "user": account.user_payload()})

    async def list_webhooks(self, request: web.Request) -> web.Response:
        account = self._caller(request)
        if "channel" in request.match_info:
            require_permissions(self.fake, account, int(request.match_info["channel"]), MANAGE_WEBHOOKS)
        channel = request.match_info.get("channel")
        hooks = [w for w in self.webhooks.values() if channel is None or w.channel_id == int(channel)]
        return json_response([w.payload(self.fake.guild.id) for w in hooks])

    async def get_webhook(self, request: web.Request) -> web.Response:
        self._caller(request)
        webhook = self.webhooks.get(int(request.match_info["webhook"]))
        if webhook is None:
            return json_response({"message": "Unknown Webhook", "code": 10015}, 404)
        return json_response(webhook.payload(self.fake.guild.id))

    def _webhook_target(self, request: web.Request):
        """(webhook, interaction) for /webhooks/{id}/{token}: a channel webhook or an interaction's."""
        webhook_id, token = int(request.match_info["webhook"]), request.match_info["token"]
        webhook = self.webhooks.get(webhook_id)
        if webhook is not None and webhook.token == token:
            return webhook, None
        for interaction in self.interactions.values():
            if interaction.application_id == webhook_id and interaction.token == token:
                return None, interaction
        raise http_error(404, "Unknown Webhook", 10015)

    async def execute_webhook(self, request: web.Request) -> web.Response:
        webhook, interaction = self._webhook_target(request)
        payload, files = await self._body(request)
        if interaction is not None:
            bot = self.fake.account_by_application(interaction.application_id)
            message = self._message(
                interaction.channel_id, bot.user_payload(), payload, files, webhook_id=str(interaction.application_id)
            )
            interaction.followups.append(message)
        else:
            author = {
                "id": str(webhook.id),
                "username": payload.get("username") or webhook.name,
                "avatar": None,
                "discriminator": "0000",
                "bot": True,
            }
            message = self._message(webhook.channel_id, author, payload, files, webhook_id=str(webhook.id))
            message.data["avatar_url"] = payload.get("avatar_url")
        wait = request.query.get("wait", "false").lower() in ("true", "1")
        return json_response(message.data) if wait else json_response(None, 204)

    def _webhook_message(self, request: web.Request) -> StoredMessage:
        webhook, interaction = self._webhook_target(request)
        wanted = request.match_info["message"]
        if interaction is not None:
            if wanted == "@original":
                if interaction.original is None:
                    raise http_error(404, "Unknown Message", 10008)
                return interaction.original
            for message in interaction.followups:
                if message.id == int(wanted):
                    return message
            raise http_error(404, "Unknown Message", 10008)
        return self.find_message(webhook.channel_id, int(wanted))

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        return json_response(self._webhook_message(request).data)

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        message = self._webhook_message(request)
        payload, files = await self._body(request)
        return json_response(self._edit(message, payload, files))

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        self._webhook_message(request).deleted = True
        return json_response(None, 204)

    async def interaction_callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(int(request.match_info["interaction"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            return json_response({"message": "Unknown interaction", "code": 10062}, 404)
        if interaction.responses:
            return json_response({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        payload, files = await self._body(request)
        interaction.responses.append(payload)
        kind = payload.get("type")
        bot = self.fake.account_by_application(interaction.application_id)
        resource: dict = {"type": kind}
        if kind in (4, 5, 7):  # message, deferred message, update message
            data = payload.get("data") or {}
            metadata = {
                "id": str(interaction.id),
                "type": interaction.payload["type"],
                "name": interaction.payload["data"]["name"],
                "user": interaction.payload["member"]["user"],
            }
            message = self._message(interaction.channel_id, bot.user_payload(), data, files, interaction=metadata)
            interaction.original = message
            resource["message"] = message.data
        self.fake.interaction_answered(interaction)
        body = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.payload["type"],
                "response_message_id": str(interaction.original.id) if interaction.original else None,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int((payload.get("data") or {}).get("flags") or 0) & 64),
            },
            "resource": resource,
        }
        return json_response(body)

    async def get_commands(self, request: web.Request) -> web.Response:
        self._caller(request)
        return json_response(self.commands.get(self._command_key(request), []))

    async def put_commands(self, request: web.Request) -> web.Response:
        self._caller(request)
        payload, _ = await self._body(request)
        key = self._command_key(request)
        self.commands[key] = [self._command(c, key) for c in payload]
        return json_response(self.commands[key])

    async def post_command(self, request: web.Request) -> web.Response:
        self._caller(request)
        payload, _ = await self._body(request)
        key = self._command_key(request)
        commands = [c for c in self.commands.get(key, []) if c["name"] != payload.get("name")]
        command = self._command(payload, key)
        self.commands[key] = [*commands, command]
        return json_response(command, 201)

    @staticmethod
    def _command_key(request: web.Request) -> tuple[int, int | None]:
        guild = request.match_info.get("guild")
        return int(request.match_info["app"]), int(guild) if guild else None

    @staticmethod
    def _command(data: dict, key: tuple[int, int | None]) -> dict:
        return {
            "type": 1,
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "options": [],
            **data,
            "id": str(snowflake()),
            "application_id": str(key[0]),
            "guild_id": str(key[1]) if key[1] else None,
            "version": str(snowflake()),
        }
