"""One message catalogue for the console pages: Chinese first, English switchable.

The language comes from `?lang=zh|en` (remembered in the `llmage_lang` cookie), then that
cookie, then Chinese. Templates call `t("key")`; a missing key shows the key itself, so a
gap is visible rather than an error page.
"""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
LANG_COOKIE = "llmage_lang"

MESSAGES: dict[str, tuple[str, str]] = {
    "brand": ("llmage", "llmage"),
    "tagline": (
        "一个计费 API，背后是众多对话、图像与视频模型",
        "One billed API in front of many chat, image and video models",
    ),
    "landing.what": (
        "自托管的 AI 生成网关：用一个 API 密钥调用对话、图像和视频模型，按量计费，余额充值即用。",
        "A self-hosted AI generation gateway: one API key for chat, image and video models, "
        "billed per use from a prepaid balance.",
    ),
    "nav.home": ("首页", "Home"),
    "nav.login": ("登录", "Log in"),
    "nav.signup": ("注册", "Sign up"),
    "nav.logout": ("退出", "Log out"),
    "nav.keys": ("API 密钥", "API keys"),
    "nav.topup": ("充值", "Top up"),
    "nav.finance": ("财务", "Finance"),
    "nav.models": ("模型广场", "Model plaza"),
    "nav.docs": ("API 文档", "API docs"),
    "nav.admin": ("管理", "Admin"),
    "lang.switch": ("English", "中文"),
    "auth.username": ("用户名", "Username"),
    "auth.password": ("密码", "Password"),
    "auth.phone": ("手机号", "Phone number"),
    "auth.code": ("验证码", "Code"),
    "auth.send_code": ("发送验证码", "Send code"),
    "auth.code_sent": ("验证码已发送", "Code sent"),
    "auth.by_password": ("密码登录", "Password"),
    "auth.by_sms": ("短信登录", "SMS code"),
    "auth.submit_login": ("登录", "Log in"),
    "auth.submit_signup": ("注册", "Sign up"),
    "auth.phone_optional": ("手机号（可选）", "Phone (optional)"),
    "auth.have_account": ("已有账号？登录", "Have an account? Log in"),
    "auth.no_account": ("没有账号？注册", "No account? Sign up"),
    "keys.title": ("API 密钥", "API keys"),
    "keys.name": ("名称", "Name"),
    "keys.create": ("创建密钥", "Create key"),
    "keys.shown_once": (
        "请立即复制，此密钥只显示这一次：",
        "Copy it now, this key is shown only once:",
    ),
    "keys.copy": ("复制", "Copy"),
    "keys.copied": ("已复制", "Copied"),
    "keys.prefix": ("前缀", "Prefix"),
    "keys.status": ("状态", "Status"),
    "keys.created": ("创建时间", "Created"),
    "keys.last_used": ("最近使用", "Last used"),
    "keys.expires": ("过期时间", "Expires"),
    "keys.models": ("模型", "Models"),
    "keys.limit": ("额度", "Spend limit"),
    "keys.revoke": ("吊销", "Revoke"),
    "keys.revoke_confirm": ("确定吊销这个密钥？", "Revoke this key?"),
    "keys.none": ("还没有密钥", "No keys yet"),
    "webhook.title": ("Webhook 签名密钥", "Webhook signing secret"),
    "webhook.help": (
        "任务回调带 X-Llmage-Signature，用此密钥校验。",
        "Task callbacks carry X-Llmage-Signature; verify it with this secret.",
    ),
    "webhook.show": ("显示", "Show"),
    "webhook.rotate": ("轮换", "Rotate"),
    "topup.title": ("充值", "Top up"),
    "topup.amount": ("金额（元）", "Amount (CNY)"),
    "topup.page": ("支付宝网页支付", "Alipay page pay"),
    "topup.qr": ("支付宝扫码", "Alipay QR code"),
    "topup.pay": ("去支付", "Pay"),
    "topup.order": ("订单", "Order"),
    "topup.status": ("状态", "Status"),
    "topup.scan": ("用支付宝扫码支付", "Scan with Alipay to pay"),
    "topup.redeem": ("兑换码", "Redeem code"),
    "topup.redeem_submit": ("兑换", "Redeem"),
    "topup.orders": ("我的订单", "My orders"),
    "finance.title": ("财务", "Finance"),
    "finance.balance": ("余额", "Balance"),
    "finance.held": ("冻结", "Held"),
    "finance.available": ("可用", "Available"),
    "finance.ledger": ("账单流水", "Ledger"),
    "finance.usage": ("用量记录", "Usage"),
    "finance.daily": ("每日消费", "Daily spend"),
    "finance.export": ("导出 CSV", "Export CSV"),
    "finance.filter": ("筛选", "Filter"),
    "finance.model": ("模型", "Model"),
    "finance.from": ("开始", "From"),
    "finance.to": ("结束", "To"),
    "col.time": ("时间", "Time"),
    "col.kind": ("类型", "Kind"),
    "col.amount": ("金额", "Amount"),
    "col.held_change": ("冻结变动", "Held change"),
    "col.note": ("说明", "Note"),
    "col.model": ("模型", "Model"),
    "col.status": ("状态", "Status"),
    "col.cost": ("费用", "Cost"),
    "plaza.title": ("模型广场", "Model plaza"),
    "plaza.all": ("全部", "All"),
    "plaza.vendor": ("厂商", "Vendor"),
    "plaza.kind": ("类型", "Kind"),
    "plaza.names": ("模型名", "Model names"),
    "plaza.price": ("价格", "Price"),
    "plaza.params": ("参数", "Parameters"),
    "plaza.param": ("参数名", "Name"),
    "plaza.type": ("类型", "Type"),
    "plaza.required": ("必填", "Required"),
    "plaza.allowed": ("取值", "Allowed"),
    "plaza.default": ("默认", "Default"),
    "plaza.description": ("说明", "Description"),
    "plaza.examples": (
        "调用示例（把 sk-YOUR-KEY 换成你的密钥）",
        "Examples (replace sk-YOUR-KEY with your key)",
    ),
    "admin.title": ("管理", "Admin"),
    "admin.users": ("用户", "Users"),
    "admin.role": ("角色", "Role"),
    "admin.disabled": ("已停用", "Disabled"),
    "admin.disable": ("停用", "Disable"),
    "admin.enable": ("启用", "Enable"),
    "admin.make_admin": ("设为管理员", "Make admin"),
    "admin.make_user": ("设为用户", "Make user"),
    "admin.adjust": ("调账", "Adjust"),
    "admin.credit": ("加款", "Credit"),
    "admin.debit": ("扣款", "Debit"),
    "admin.reason": ("原因", "Reason"),
    "admin.orders": ("充值订单", "Top-up orders"),
    "admin.codes": ("兑换码", "Redeem codes"),
    "admin.codes_create": ("生成兑换码", "Create codes"),
    "admin.count": ("数量", "Count"),
    "admin.note": ("备注", "Note"),
    "admin.codes_new": ("新兑换码（只显示这一次）", "New codes (shown this once)"),
    "admin.forbidden": ("需要管理员权限", "This page needs the admin role"),
    "nav.playground": ("体验", "Playground"),
    "play.title": ("在线体验", "Playground"),
    "play.key": ("API 密钥（只保存在本页会话中）", "API key (kept in this tab only)"),
    "play.model": ("模型", "Model"),
    "play.prompt": ("输入消息", "Message"),
    "play.send": ("发送", "Send"),
    "play.stop": ("停止", "Stop"),
    "play.media": ("图像 / 视频生成", "Image / video generation"),
    "play.choose": ("选择模型", "Choose a model"),
    "play.estimate": ("估价", "Estimate"),
    "play.submit": ("提交任务", "Submit task"),
    "play.price": ("预计费用", "Estimated price"),
    "play.task": ("任务", "Task"),
    "docs.title": ("API 文档", "API docs"),
    "error.generic": ("出错了", "Something went wrong"),
    "loading": ("加载中…", "Loading…"),
}


def lang_of(request: Request) -> Lang:
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGS:
            return "zh" if candidate == "zh" else "en"
    return "zh"


def translate(lang: Lang, key: str) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh" else pair[1]
