"""Sending SMS verification codes: one small interface, a log sender for development and the
Aliyun SMS (dysmsapi SendSms) sender for production, chosen by `LLMAGE_SMS_BACKEND`."""

from __future__ import annotations

from llmage.sms.sender import LogSmsSender, SmsFailed, SmsSender, make_sms_sender

__all__ = ["LogSmsSender", "SmsFailed", "SmsSender", "make_sms_sender"]
