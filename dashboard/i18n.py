"""UI text in Chinese (default) and English."""

from __future__ import annotations

__all__ = ["TEXT", "tr", "tr_opt", "session_language"]

TEXT: dict[str, tuple[str, str]] = {  # key -> (zh, en)
    "wall": ("城市运行总览", "City overview"),
    "lighting": ("路灯照明", "Street lighting"),
    "alarms": ("告警", "Alarms"),
    "online": ("设备在线", "Devices online"),
    "lamp_on_rate": ("亮灯率", "Lamp-on rate"),
    "dust_exceed": ("扬尘超标", "Dust exceedances"),
    "trucks_on_duty": ("在岗车辆", "Trucks on duty"),
    "active_alarms": ("活动告警", "Active alarms"),
    "lighting_cabinet": ("路灯箱", "Cabinets"),
    "dust_monitor": ("扬尘监测", "Dust monitors"),
    "vehicle": ("车辆", "Vehicles"),
    "critical": ("紧急", "Critical"),
    "major": ("重要", "Major"),
    "minor": ("次要", "Minor"),
    "warning": ("提示", "Warning"),
    "case_no": ("案件号", "Case no."),
    "case_status": ("案件状态", "Case status"),
    "severity": ("级别", "Severity"),
    "device": ("设备", "Device"),
    "message": ("内容", "Message"),
    "state": ("状态", "State"),
    "raised": ("发生时间", "Raised"),
    "no_alarms": ("当前无活动告警", "No active alarms"),
    "cabinet": ("控制箱", "Cabinet"),
    "circuit": ("回路", "Circuit"),
    "current": ("电流 A", "Current A"),
    "voltage": ("电压 V", "Voltage V"),
    "door": ("箱门", "Door"),
    "on": ("开", "On"),
    "off": ("关", "Off"),
    "open": ("打开", "Open"),
    "closed": ("关闭", "Closed"),
    "reason": ("操作原因（必填）", "Reason (required)"),
    "switch": ("切换回路…", "Switch circuit…"),
    "confirm": ("确认执行", "Confirm"),
    "cancel": ("取消", "Cancel"),
    "confirm_q": (
        "确认：{cab} 第 {n} 回路 → {state}？原因：{reason}",
        "Confirm: {cab} circuit {n} → {state}? Reason: {reason}",
    ),
    "progress": ("指令进度", "Command progress"),
    "acknowledge": ("确认告警", "Acknowledge"),
    "user": ("用户", "User"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "refused_role": (
        "无权限：当前角色不能执行此操作（已记录）",
        "Refused: your role may not do this (logged)",
    ),
    "reason_required": ("请填写操作原因", "A reason is required"),
    "unknown_device": ("未知控制箱或归属网关", "Unknown cabinet or owning agent"),
    "bad_circuit": ("回路号无效", "Bad circuit number"),
    "unknown_alarm": ("告警不存在", "Unknown alarm"),
    "publish_failed": ("发送失败：与消息服务器的连接中断", "Sending failed: broker not reachable"),
    "sent": ("指令已发送", "Command sent"),
    "ack_sent": ("确认请求已发送", "Acknowledgement sent"),
    "issued": ("已发出", "issued"),
    "received": ("网关已收到", "received"),
    "acknowledged": ("设备已应答", "acknowledged"),
    "confirmed": ("已确认", "confirmed"),
    "failed": ("失败", "failed"),
    "rejected": ("被拒绝", "rejected"),
    "expired": ("已过期", "expired"),
    "stale": ("数据陈旧", "stale"),
    "updated": ("更新于", "updated"),
    "select_alarm": ("请选择一条告警", "Select an alarm"),
    "availability": ("在线", "Online"),
    "name": ("名称", "Name"),
    "road": ("道路", "Road"),
    "st_open": ("未处理", "open"),
    "st_acknowledged": ("已确认", "acknowledged"),
    "st_in_progress": ("处理中", "in progress"),
    "st_shelved": ("已搁置", "shelved"),
    "st_resolved": ("已恢复", "resolved"),
    "st_closed": ("已关闭", "closed"),
    "viewer_hint": ("当前为只读访客，登录后可操作", "Read-only guest; log in to act"),
    "fleet": ("车辆监管", "Fleet"),
    "fleet_col": ("车队", "Fleet"),
    "company": ("公司", "Company"),
    "plate": ("车牌", "Plate"),
    "speed": ("速度 km/h", "Speed km/h"),
    "heading": ("航向 °", "Heading °"),
    "moving": ("行驶", "moving"),
    "idle": ("停驶", "idle"),
    "offline": ("离线", "offline"),
    "online_st": ("在线", "online"),
    "all": ("全部", "All"),
    "track": ("轨迹回放", "Track playback"),
    "day": ("日期", "Day"),
    "load_track": ("加载轨迹", "Load track"),
    "no_track": ("该日无轨迹记录", "No track recorded that day"),
    "track_points": ("轨迹点 {n} 个", "{n} track points"),
    "violations": ("违规告警", "Violations"),
    "history": ("历史告警", "Alarm history"),
    "active": ("活动告警", "Active alarms"),
    "domain": ("业务", "Domain"),
    "district": ("区县", "District"),
    "lighting_d": ("照明", "lighting"),
    "dust_d": ("扬尘", "dust"),
    "vehicle_d": ("车辆", "vehicle"),
    "comment": ("备注", "Comment"),
    "assign": ("指派", "Assign"),
    "shelve": ("搁置", "Shelve"),
    "resolve": ("恢复/解决", "Resolve"),
    "assignee": ("指派给", "Assign to"),
    "text": ("说明", "Note"),
    "action_sent": ("操作请求已发送", "Action sent"),
    "text_required": ("请填写说明", "A note is required"),
    "updated_at": ("更新时间", "Updated"),
    "hours": ("时间范围", "Range"),
    "last_24h": ("近24小时", "Last 24 h"),
    "last_7d": ("近7天", "Last 7 days"),
    "store_unavailable": ("历史库不可用", "History store unavailable"),
    "road_main": ("主干道", "main roads"),
    "road_secondary": ("次干道", "secondary roads"),
    "target": ("目标", "target"),
    "layers": ("图层", "Layers"),
    "no_data": ("无数据", "no data"),
    "time": ("时间", "Time"),
    "case_filed": ("已立案", "filed"),
    "case_dispatched": ("已派遣", "dispatched"),
    "case_closed": ("已结案", "closed"),
    "case_pending": ("待立案", "pending"),
    "fleet_construction_waste": ("渣土车", "construction waste"),
    "fleet_sanitation": ("环卫车", "sanitation"),
    "fleet_kitchen_waste": ("餐厨垃圾车", "kitchen waste"),
    "geofences": ("电子围栏", "Geofences"),
    "geofence": ("围栏", "Geofence"),
    "gf_construction_site": ("工地", "construction site"),
    "gf_disposal_site": ("消纳场", "disposal site"),
    "gf_treatment_plant": ("处理厂", "treatment plant"),
    "gf_collection_point": ("收运点", "collection point"),
    "gf_depot": ("停车场", "depot"),
    "gf_banned_zone": ("禁行区", "banned zone"),
    "gf_approved_route": ("核准路线", "approved route"),
}


def tr(key: str, lang: str = "zh", **fmt: object) -> str:
    """The text for ``key`` in ``lang`` (the key itself when unknown)."""
    zh_en = TEXT.get(key)
    text = key if zh_en is None else zh_en[1 if lang == "en" else 0]
    return text.format(**fmt) if fmt else text


def tr_opt(prefix: str, value: str | None, lang: str = "zh") -> str:
    """``value`` translated through the key ``prefix + value``; the raw value when unknown."""
    if not value:
        return ""
    return tr(prefix + value, lang) if prefix + value in TEXT else value


def session_language(default: str) -> str:
    """``?lang=en`` / ``?lang=zh`` on the page URL overrides the configured language."""
    import panel as pn

    try:
        args = pn.state.session_args or {}
        raw = args.get("lang", [b""])[0]
        lang = raw.decode() if isinstance(raw, bytes) else str(raw)
    except Exception:  # noqa: BLE001 - outside a server session
        lang = ""
    return lang if lang in ("zh", "en") else default
