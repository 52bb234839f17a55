"""Tables. Timestamps are integer epoch milliseconds (UTC): one portable type that raw SQL on the
hot path can bind on SQLite and PostgreSQL alike. Money columns are BIGINT micro-units."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("email", String(255), nullable=True, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False, server_default="user"),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
    # Console (migration 0005): a verified phone for SMS login, and the salt that makes this
    # user's webhook signing secret their own (rotating it changes the secret).
    Column("phone", String(32), nullable=True),
    Column("webhook_salt", String(64), nullable=True),
    # Limits (NULL: unlimited); per-model overrides as JSON {model: {rpm, tpm, concurrency}}
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("concurrency_limit", Integer, nullable=True),
    Column("task_limit", Integer, nullable=True),
    Column("model_limits", Text, nullable=True),
    CheckConstraint("role IN ('user', 'admin')", name="role"),
    Index("ix_users_phone", "phone", unique=True),
)

accounts = Table(
    "accounts",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    # The database itself refuses an overdraft, whatever the code above it does.
    CheckConstraint("held >= 0", name="held_nonneg"),
    CheckConstraint("balance >= held", name="available_nonneg"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("models", Text, nullable=True),  # JSON list: allow-list of model names / llmids
    Column("spend_limit", BigInteger, nullable=True),
    Column("spent", BigInteger, nullable=False, server_default="0"),  # captured + open holds
    # Limits (NULL: unlimited); per-model overrides as JSON {model: {rpm, tpm, concurrency}}
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("concurrency_limit", Integer, nullable=True),
    Column("task_limit", Integer, nullable=True),
    Column("model_limits", Text, nullable=True),
    CheckConstraint("spend_limit IS NULL OR spent <= spend_limit", name="within_limit"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("delta_balance", BigInteger, nullable=False),
    Column("delta_held", BigInteger, nullable=False),
    Column("ref", String(200), nullable=False, unique=True),  # one entry per external reference
    Column("hold_id", String(32), nullable=True, index=True),
    Column("memo", Text, nullable=True),
    Column("actor_id", Integer, nullable=True),  # the admin behind a manual adjustment
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint(
        "kind IN ('topup', 'adjust', 'hold', 'capture', 'release', 'refund', 'redeem')", name="kind"
    ),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("key_id", Integer, nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("captured", BigInteger, nullable=True),
    Column("state", String(16), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("ref", String(64), nullable=True),  # usage record id or task id
    Column("created_at", BigInteger, nullable=False),
    Column("settled_at", BigInteger, nullable=True),
    CheckConstraint("state IN ('open', 'captured', 'released')", name="state"),
    CheckConstraint("amount >= 0", name="amount_nonneg"),
    CheckConstraint("captured IS NULL OR (captured >= 0 AND captured <= amount)", name="capture"),
    Index("ix_holds_open", "state", "created_at"),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", String(32), primary_key=True),  # the `llmusageid` given to the client
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("key_id", Integer, nullable=True),
    Column("hold_id", String(32), nullable=True),
    Column("model", String(128), nullable=False),
    Column("llmid", String(32), nullable=True),
    Column("channel_id", Integer, nullable=True),
    Column("dialect", String(16), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("prompt_tokens", Integer, nullable=False, server_default="0"),
    Column("completion_tokens", Integer, nullable=False, server_default="0"),
    Column("cached_tokens", Integer, nullable=False, server_default="0"),
    Column("amount", BigInteger, nullable=False, server_default="0"),
    Column("estimated", Boolean, nullable=False, server_default=false()),
    Column("latency_ms", Integer, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_usage_records_user_created", "user_id", "created_at"),
)

channels = Table(
    "channels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("provider", String(32), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("base_url", String(512), nullable=False, server_default=""),
    Column("credential_enc", Text, nullable=True),  # Fernet token; never logged or returned
    Column("credential_type", String(16), nullable=True),  # key | pair | pool (domain.credentials)
    Column("models", Text, nullable=False, server_default="[]"),  # JSON list of served names
    Column("model_map", Text, nullable=False, server_default="{}"),  # JSON ours -> upstream
    Column("options", Text, nullable=False, server_default="{}"),  # JSON provider options
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("weight", Integer, nullable=False, server_default="1"),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", BigInteger, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(32), primary_key=True),  # public id; the upstream id is never shown
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("key_id", Integer, nullable=True),
    Column("kind", String(8), nullable=False),  # video | image
    Column("llmid", String(32), nullable=False),
    Column("model", String(128), nullable=False),
    Column("dialect", String(16), nullable=False),
    Column("platform", String(32), nullable=True),  # pinned by a /{platform}/v1 route
    Column("status", String(16), nullable=False),
    Column("progress", Integer, nullable=False, server_default="0"),
    Column("params", Text, nullable=False),  # JSON: validated parameters, never files
    Column("inputs", Text, nullable=True),  # JSON: stored input files (domain.stored_files)
    Column("channel_id", Integer, nullable=True),
    Column("provider", String(32), nullable=True),
    Column("upstream_id", String(200), nullable=True),
    Column("key_index", Integer, nullable=False, server_default="0"),  # key of a pool used
    Column("upstream_state", Text, nullable=True),  # JSON: what the adapter polls with
    Column("hold_id", String(32), nullable=False),
    Column("quoted", BigInteger, nullable=False),
    Column("charged", BigInteger, nullable=True),
    Column("usage", Text, nullable=True),  # JSON, the seed's `usage` shape
    Column("outputs", Text, nullable=True),  # JSON: stored result files (same shape as inputs)
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("callback_url", Text, nullable=True),
    Column("remix_of", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("deadline_at", BigInteger, nullable=False),
    Column("next_poll_at", BigInteger, nullable=False),
    Column("polls", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    Column("media_expired_at", BigInteger, nullable=True),  # stored files deleted (retention)
    CheckConstraint(
        "status IN ('CREATED', 'SUBMITTING', 'PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED',"
        " 'CANCELLED')",
        name="status",
    ),
    UniqueConstraint("user_id", "idempotency_key", name="uq_tasks_user_idempotency"),
    Index("ix_tasks_due", "status", "next_poll_at"),
    Index("ix_tasks_user_created", "user_id", "created_at"),
    Index("ix_tasks_user_status", "user_id", "status"),  # open-task limits
    Index("ix_tasks_key_status", "key_id", "status"),
    Index("ix_tasks_channel_status", "channel_id", "status"),  # channel max_concurrency
    Index("ix_tasks_finished", "finished_at"),  # media retention
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("task_id", String(32), nullable=False, unique=True),  # one terminal callback a task
    Column("url", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Column("failed_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_webhook_deliveries_due", "delivered_at", "failed_at", "next_attempt_at"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    # SHA-256 of the cookie's random token: a leaked table cannot be replayed as cookies.
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(256), nullable=True),
)

sms_codes = Table(
    "sms_codes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone", String(32), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("code_hash", String(64), nullable=False),  # HMAC under a deployment secret
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("consumed_at", BigInteger, nullable=True),
    CheckConstraint("purpose IN ('login', 'register', 'reset')", name="purpose"),
    Index("ix_sms_codes_phone_purpose", "phone", "purpose", "created_at"),
)

# --- payments (top-up orders, redeem codes) ------------------------------------------------------

topup_orders = Table(
    "topup_orders",
    metadata,
    Column("out_trade_no", String(64), primary_key=True),  # ours, sent to the payment provider
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),  # micro-units, whole fen
    Column("method", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("qr_code", Text, nullable=True),  # precreate's QR content (alipay_qr)
    Column("trade_no", String(64), nullable=True),  # the provider's, once paid
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # sent as time_expire
    Column("paid_at", BigInteger, nullable=True),
    Column("closed_at", BigInteger, nullable=True),
    Column("checks", Integer, nullable=False, server_default="0"),  # trade queries made
    Column("next_check_at", BigInteger, nullable=False),
    CheckConstraint("status IN ('pending', 'paid', 'closed')", name="status"),
    CheckConstraint("method IN ('alipay_page', 'alipay_qr')", name="method"),
    CheckConstraint("amount > 0", name="amount_pos"),
    Index("ix_topup_orders_due", "status", "next_check_at"),
    Index("ix_topup_orders_user_created", "user_id", "created_at"),
)

redeem_batches = Table(
    "redeem_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(200), nullable=False, server_default=""),
    Column("amount", BigInteger, nullable=False),  # per code, micro-units
    Column("count", Integer, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("created_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="amount_pos"),
)

redeem_codes = Table(
    "redeem_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", Integer, ForeignKey("redeem_batches.id"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False, unique=True),  # SHA-256: shown once, like keys
    Column("prefix", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("redeemed_by", Integer, ForeignKey("users.id"), nullable=True),
    Column("redeemed_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="amount_pos"),
)

# Admin overrides of the catalog file (migration 0009): a model switched off or repriced.
# `price` is JSON in micro-units (domain/model_overrides.py); NULL keeps the file's price.
model_overrides = Table(
    "model_overrides",
    metadata,
    Column("llmid", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("price", Text, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", Integer, ForeignKey("users.id"), nullable=True),
)
