"""REST request and response models (reference §1-3, §8).

A request class is bound to its ``service/command`` path and, through its generic parameter, to
its response class: ``SendC2CMsg(RestRequest[SendC2CMsgResponse])``. Every response carries the
``ActionStatus`` / ``ErrorCode`` / ``ErrorInfo`` envelope; its other fields default to empty so that
a ``FAIL`` answer still parses into the same type.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

from pydantic import ConfigDict, Field

from timbridge.protocol.base import WireModel
from timbridge.protocol.callbacks import GroupAtInfo
from timbridge.protocol.elements import MsgBody

__all__ = [
    "FORBID_CALLBACKS",
    "AccountImport",
    "AddGroupMember",
    "AddGroupMemberResponse",
    "AdminGetRoamMsg",
    "AdminGetRoamMsgResponse",
    "AdminMsgWithdraw",
    "CreateGroup",
    "CreateGroupResponse",
    "CreateRobot",
    "DeleteRobot",
    "DeskTransferResponse",
    "DeskTransferToHuman",
    "GetAllRobots",
    "GetAllRobotsResponse",
    "GroupHistoryMsg",
    "GroupMember",
    "GroupMemberResult",
    "GroupMsgGetSimple",
    "GroupMsgGetSimpleResponse",
    "GroupMsgRecall",
    "GroupMsgRecallResponse",
    "ImportedAccount",
    "ModifyC2CMsg",
    "ModifyGroupMsg",
    "MultiAccountImport",
    "MultiAccountImportResponse",
    "OfflinePushInfo",
    "RecallResult",
    "RecallSeq",
    "RestRequest",
    "RestResponse",
    "RoamMsg",
    "RobotSendStreamMsg",
    "RobotSendStreamMsgResponse",
    "SendC2CMsg",
    "SendC2CMsgResponse",
    "SendC2CStreamMsg",
    "SendGroupMsg",
    "SendGroupMsgResponse",
    "SendGroupStreamMsg",
    "StreamMsgResponse",
]

#: Put on robot replies so ordinary send callbacks never loop back to us (§7.2).
FORBID_CALLBACKS = ("ForbidBeforeSendMsgCallback", "ForbidAfterSendMsgCallback")


class RestResponse(WireModel):
    """The envelope every REST answer carries."""

    action_status: str
    error_code: int
    error_info: str = ""

    @property
    def ok(self) -> bool:
        return self.action_status == "OK" and self.error_code == 0


ResponseT = TypeVar("ResponseT", bound=RestResponse)


class RestRequest(WireModel, Generic[ResponseT]):
    """A REST call: its body fields, its path (`command`) and its answer type (`response_type`)."""

    # Unknown fields are ignored, as Tencent does; typos in our own code are caught by mypy's
    # pydantic plugin (init_forbid_extra), not at run time.
    model_config = ConfigDict(extra="ignore")

    command: ClassVar[str]
    response_type: ClassVar[type[RestResponse]] = RestResponse

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for base in cls.__mro__:
            meta = getattr(base, "__pydantic_generic_metadata__", None)
            if meta and meta["origin"] is RestRequest and meta["args"]:
                cls.response_type = meta["args"][0]
                break

    def parse_response(self, body: bytes) -> ResponseT:
        """Validate an answer's JSON into this call's response type."""
        return cast(ResponseT, self.response_type.model_validate_json(body))


# --- accounts -------------------------------------------------------------------------------


class AccountImport(RestRequest[RestResponse]):
    command = "im_open_login_svc/account_import"
    user_id: str = Field(alias="UserID")
    nick: str | None = None
    face_url: str | None = None


class ImportedAccount(WireModel):
    user_id: str = Field(alias="UserID")
    nick: str | None = None
    face_url: str | None = None


class MultiAccountImportResponse(RestResponse):
    fail_accounts: tuple[str, ...] = ()


class MultiAccountImport(RestRequest[MultiAccountImportResponse]):
    command = "im_open_login_svc/multiaccount_import"
    account_list: tuple[ImportedAccount, ...]


# --- robots ---------------------------------------------------------------------------------


class CreateRobot(RestRequest[RestResponse]):
    command = "openim_robot_http_svc/create_robot"
    user_id: str = Field(alias="UserID")
    nick: str | None = None
    face_url: str | None = None
    self_signature: str | None = None


class DeleteRobot(RestRequest[RestResponse]):
    command = "openim_robot_http_svc/delete_robot"
    robot_account: str = Field(alias="Robot_Account")


class GetAllRobotsResponse(RestResponse):
    robot_account: tuple[str, ...] = Field(default=(), alias="Robot_Account")


class GetAllRobots(RestRequest[GetAllRobotsResponse]):
    command = "openim_robot_http_svc/get_all_robots"


# --- sending --------------------------------------------------------------------------------


class OfflinePushInfo(WireModel):
    push_flag: int = 0
    title: str | None = None
    desc: str | None = None
    ext: str | None = None


class SendC2CMsgResponse(RestResponse):
    msg_time: int = 0
    msg_key: str = ""


class SendC2CMsg(RestRequest[SendC2CMsgResponse]):
    """``openim/sendmsg``: one C2C message, sent as `from_account` (a robot, for replies)."""

    command = "openim/sendmsg"
    sync_other_machine: int | None = None
    from_account: str | None = Field(default=None, alias="From_Account")
    to_account: str = Field(alias="To_Account")
    msg_life_time: int | None = None
    msg_seq: int | None = None
    msg_random: int
    msg_body: MsgBody
    cloud_custom_data: str | None = None
    forbid_callback_control: tuple[str, ...] | None = None
    send_msg_control: tuple[str, ...] | None = None
    offline_push_info: OfflinePushInfo | None = None
    is_need_read_receipt: int | None = None
    online_only_flag: int | None = None  # in the batch API's doc; on sendmsg UNVERIFIED (§3.1)


class SendGroupMsgResponse(RestResponse):
    msg_time: int = 0
    msg_seq: int = 0


class SendGroupMsg(RestRequest[SendGroupMsgResponse]):
    """``group_open_http_svc/send_group_msg``."""

    command = "group_open_http_svc/send_group_msg"
    group_id: str
    random: int
    msg_body: MsgBody
    from_account: str | None = Field(default=None, alias="From_Account")
    msg_priority: Literal["High", "Normal", "Low", "Lowest"] | None = None
    online_only_flag: int | None = None
    send_msg_control: tuple[str, ...] | None = None
    forbid_callback_control: tuple[str, ...] | None = None
    offline_push_info: OfflinePushInfo | None = None
    cloud_custom_data: str | None = None
    topic_id: str | None = None
    group_at_info: tuple[GroupAtInfo, ...] | None = None


class ModifyC2CMsg(RestRequest[RestResponse]):
    command = "openim/modify_c2c_msg"
    from_account: str = Field(alias="From_Account")
    to_account: str = Field(alias="To_Account")
    msg_key: str
    msg_body: MsgBody | None = None
    cloud_custom_data: str | None = None


class ModifyGroupMsg(RestRequest[RestResponse]):
    command = "openim/modify_group_msg"
    group_id: str
    msg_seq: int
    msg_body: MsgBody | None = None
    cloud_custom_data: str | None = None
    topic_id: str | None = None


class AdminMsgWithdraw(RestRequest[RestResponse]):
    """``openim/admin_msgwithdraw``: recall a C2C message by its ``MsgKey`` (no time limit;
    Tencent then sends ``C2C.CallbackAfterMsgWithDraw``)."""

    command = "openim/admin_msgwithdraw"
    from_account: str = Field(alias="From_Account")
    to_account: str = Field(alias="To_Account")
    msg_key: str


class RecallSeq(WireModel):
    msg_seq: int


class RecallResult(WireModel):
    msg_seq: int
    ret_code: int = 0


class GroupMsgRecallResponse(RestResponse):
    recall_ret_list: tuple[RecallResult, ...] = ()


class GroupMsgRecall(RestRequest[GroupMsgRecallResponse]):
    """``group_open_http_svc/group_msg_recall``: recall group messages by ``MsgSeq`` (Tencent
    then sends ``Group.CallbackAfterRecallMsg``)."""

    command = "group_open_http_svc/group_msg_recall"
    group_id: str
    msg_seq_list: tuple[RecallSeq, ...]
    reason: str | None = None
    topic_id: str | None = None


class DeskTransferResponse(RestResponse):
    agent_id: str = ""
    is_in_queue: int = 0


class DeskTransferToHuman(RestRequest[DeskTransferResponse]):
    """``desk_http_svc/transfer_to_human``: hand a Desk session to a human agent."""

    command = "desk_http_svc/transfer_to_human"
    session_id: str
    agent_id_list: tuple[str, ...] | None = None
    agent_group_id: int | None = None
    send_tip_if_no_agent_online: int | None = None


# --- streaming ------------------------------------------------------------------------------


class StreamMsgResponse(RestResponse):
    stream_msg_id: str = Field(default="", alias="StreamMsgID")
    msg_key: str = ""
    msg_seq: int = 0
    msg_time: int = 0


class SendC2CStreamMsg(RestRequest[StreamMsgResponse]):
    """``stream_msg/send_c2c_stream_msg``: a `StreamElem` chunk of a C2C stream message."""

    command = "stream_msg/send_c2c_stream_msg"
    sync_other_machine: int | None = None
    from_account: str = Field(alias="From_Account")
    to_account: str = Field(alias="To_Account")
    msg_seq: int | None = None
    msg_random: int
    msg_body: MsgBody
    cloud_custom_data: str | None = None


class SendGroupStreamMsg(RestRequest[StreamMsgResponse]):
    """``stream_msg/send_group_stream_msg``: a `StreamElem` chunk of a group stream message."""

    command = "stream_msg/send_group_stream_msg"
    group_id: str
    from_account: str = Field(alias="From_Account")
    msg_random: int
    msg_body: MsgBody
    cloud_custom_data: str | None = None
    topic_id: str | None = None


class RobotSendStreamMsgResponse(RestResponse):
    msg_key: str = ""


class RobotSendStreamMsg(RestRequest[RobotSendStreamMsgResponse]):
    """``openim_robot_http_svc/send_stream_msg``: robot text streaming, C2C only."""

    command = "openim_robot_http_svc/send_stream_msg"
    from_account: str = Field(alias="From_Account")
    to_account: str = Field(alias="To_Account")
    chunk: str
    msg_key: str | None = None
    finish: int | None = None


# --- groups ---------------------------------------------------------------------------------


class GroupMember(WireModel):
    member_account: str = Field(alias="Member_Account")
    role: str | None = None


class CreateGroupResponse(RestResponse):
    group_id: str = ""


class CreateGroup(RestRequest[CreateGroupResponse]):
    command = "group_open_http_svc/create_group"
    type: Literal["Public", "Private", "Work", "ChatRoom", "Meeting", "AVChatRoom", "Community"]
    name: str
    owner_account: str | None = Field(default=None, alias="Owner_Account")
    group_id: str | None = None
    introduction: str | None = None
    notification: str | None = None
    face_url: str | None = None
    max_member_count: int | None = None
    apply_join_option: str | None = None
    member_list: tuple[GroupMember, ...] | None = None
    support_topic: int | None = None


class GroupMemberResult(WireModel):
    member_account: str = Field(alias="Member_Account")
    result: int = 0


class AddGroupMemberResponse(RestResponse):
    member_list: tuple[GroupMemberResult, ...] = ()


class AddGroupMember(RestRequest[AddGroupMemberResponse]):
    command = "group_open_http_svc/add_group_member"
    group_id: str
    silence: int | None = None
    member_list: tuple[GroupMember, ...]


# --- history --------------------------------------------------------------------------------


class RoamMsg(WireModel):
    """One C2C message of `admin_getroammsg`."""

    from_account: str = Field(alias="From_Account")
    to_account: str = Field(alias="To_Account")
    msg_seq: int = 0
    msg_random: int = 0
    msg_time_stamp: int = 0
    msg_flag_bits: int = 0
    is_peer_read: int = 0
    msg_key: str = ""
    msg_body: MsgBody = ()
    cloud_custom_data: str = ""


class AdminGetRoamMsgResponse(RestResponse):
    complete: int = 1
    msg_cnt: int = 0
    last_msg_time: int = 0
    last_msg_key: str = ""
    msg_list: tuple[RoamMsg, ...] = ()


class AdminGetRoamMsg(RestRequest[AdminGetRoamMsgResponse]):
    """``openim/admin_getroammsg``: C2C history between two accounts, newest page first."""

    command = "openim/admin_getroammsg"
    operator_account: str = Field(alias="Operator_Account")
    peer_account: str = Field(alias="Peer_Account")
    max_cnt: int
    min_time: int
    max_time: int
    last_msg_key: str | None = None


class GroupHistoryMsg(WireModel):
    """One group message of `group_msg_get_simple`."""

    from_account: str = Field(default="", alias="From_Account")
    is_place_msg: int = 0
    is_system_msg: int | None = None
    msg_body: MsgBody = ()
    msg_priority: int = 2
    msg_random: int = 0
    msg_seq: int = 0
    msg_time_stamp: int = 0
    cloud_custom_data: str | None = None


class GroupMsgGetSimpleResponse(RestResponse):
    group_id: str = ""
    is_finished: int = 1
    rsp_msg_list: tuple[GroupHistoryMsg, ...] = ()


class GroupMsgGetSimple(RestRequest[GroupMsgGetSimpleResponse]):
    """``group_open_http_svc/group_msg_get_simple``: group history, newest first."""

    command = "group_open_http_svc/group_msg_get_simple"
    group_id: str
    req_msg_number: int
    req_msg_seq: int | None = None
    with_recalled_msg: int | None = None
    topic_id: str | None = None
