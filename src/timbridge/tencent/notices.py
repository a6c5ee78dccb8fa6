"""The typing notice: TUIKit's "typing…" custom element, sent as the robot (reference §3.5).

It is an online-only C2C message (``MsgLifeTime: 0``): not stored, not roamed, not pushed, not
counted unread, and not passed to send callbacks. Re-send it every few seconds while the model
works; send it with ``typing=False`` to clear it.
"""

from __future__ import annotations

import orjson

from timbridge.protocol.elements import TYPING_BUSINESS_ID, CustomContent, CustomElem
from timbridge.protocol.rest import FORBID_CALLBACKS, OfflinePushInfo, SendC2CMsg

__all__ = ["typing_notice"]


def typing_notice(robot: str, user: str, *, msg_random: int, typing: bool = True) -> SendC2CMsg:
    """The `SendC2CMsg` that shows (or clears) "typing…" from `robot` in `user`'s chat."""
    data = {
        "businessID": TYPING_BUSINESS_ID,
        "typingStatus": 1 if typing else 0,
        "version": 1,
        "userAction": 14 if typing else 0,
        "actionParam": "EIMAMSG_InputStatus_Ing" if typing else "EIMAMSG_InputStatus_End",
    }
    return SendC2CMsg(
        sync_other_machine=2,
        from_account=robot,
        to_account=user,
        msg_life_time=0,
        msg_random=msg_random,
        send_msg_control=("NoUnread", "NoLastMsg"),
        forbid_callback_control=FORBID_CALLBACKS,
        offline_push_info=OfflinePushInfo(push_flag=1),
        msg_body=(CustomElem(msg_content=CustomContent(data=orjson.dumps(data).decode())),),
    )
