"""OPC-UA server hosting many simulated lighting cabinets on one endpoint.

Address space per cabinet (string NodeIds in the profile's namespace)::

    Objects/
      LC-0001                      ns=<i>;s=LC-0001            (object)
        VoltageL1 ... DoorOpen     ns=<i>;s=LC-0001.VoltageL1  (variables)
        Circuit1/                  ns=<i>;s=LC-0001.Circuit1   (object)
          On       (writable)      ns=<i>;s=LC-0001.Circuit1.On
          Current                  ns=<i>;s=LC-0001.Circuit1.Current
        SwitchCircuit(circuit: UInt16, on: Boolean) -> Boolean

Values carry the simulated clock's stamps as SourceTimestamp. Anonymous access without
security by default. An optional ``ServerSecurity`` turns on
Basic256Sha256 (Sign and/or SignAndEncrypt) with the server's own certificate, a trust
store of client certificates (an untrusted client is refused with BadCertificateUntrusted)
and user names with passwords (anonymous sessions are then refused).
A cabinet that is offline keeps its nodes but reads as BadNoCommunication.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.address_space import NodeData
from asyncua.server.user_managers import User, UserRole

from hardware.profiles import Profile, load_profile
from hardware.sim.clock import SimClock
from hardware.sim.lighting import CabinetModel, CircuitError
from hardware.sim.opcua_nodes import VT, Sample, bad_result, cast, method_arg, node_item

__all__ = ["OpcUaCabinetServer", "ServerSecurity"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSecurity:
    """Optional secure endpoints: certificate, trusted client certificates, users."""

    certificate: Path  # server certificate (DER or PEM)
    private_key: Path  # its private key (PEM)
    trusted_dir: Path | None = None  # client certificates accepted (*.der / *.pem); None: any
    users: dict[str, str] = field(default_factory=dict)  # name -> password; empty: anonymous
    modes: tuple[str, ...] = ("Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt")


class _Users:
    """Password check for UserName identity tokens."""

    def __init__(self, users: dict[str, str]):
        self.users = users

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, **_: Any
    ) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


class OpcUaCabinetServer:
    """One asyncua server for a group of cabinets sharing a profile."""

    def __init__(
        self,
        cabinets: list[CabinetModel],
        profile_name: str,
        host: str,
        port: int,
        is_offline: Callable[[str], bool],
        security: ServerSecurity | None = None,
        clock: SimClock | None = None,
    ):
        self.cabinets = {c.cab.id: c for c in cabinets}
        self.profile: Profile = load_profile(profile_name)
        self.host, self.port = host, port
        self.endpoint = f"opc.tcp://{host}:{port}"
        self.is_offline = is_offline
        self.security = security
        self.clock = clock if clock is not None else SimClock()
        users = _Users(security.users) if security is not None and security.users else None
        self.server = Server(user_manager=users)
        self.idx = 0
        self._nodes: dict[str, list[tuple[str, ua.NodeId, ua.VariantType]]] = {}
        self._internal: ua.DataValue | None = None  # identifies our own pushes in the setter

    async def start(self) -> None:
        """Build the address space and listen."""
        srv = self.server
        await srv.init()
        srv.set_endpoint(f"opc.tcp://{self.host}:{self.port}/")
        srv.set_server_name("Rongguan simulated lighting cabinets")
        if self.security is None:
            srv.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            await self._secure(srv, self.security)
        self.idx = await srv.register_namespace(self.profile.namespace or "urn:rongguan:sim")
        for cab_id, model in self.cabinets.items():
            await self._add_cabinet(cab_id, model)
        await srv.start()

    async def _secure(self, srv: Server, sec: ServerSecurity) -> None:
        srv.set_security_policy([getattr(ua.SecurityPolicyType, m) for m in sec.modes])
        await srv.load_certificate(str(sec.certificate))
        await srv.load_private_key(str(sec.private_key))
        if sec.trusted_dir is not None:
            store = TrustStore([sec.trusted_dir], [])
            await store.load()
            options = (
                CertificateValidatorOptions.BASIC_VALIDATION | CertificateValidatorOptions.TRUSTED
            )
            srv.set_certificate_validator(CertificateValidator(options, store))
        if sec.users:
            srv.set_identity_tokens([ua.UserNameIdentityToken])

    async def stop(self) -> None:
        """Stop listening and drop sessions."""
        await self.server.stop()

    def _nid(self, name: str) -> ua.NodeId:
        return ua.NodeId(name, self.idx)

    async def _add_cabinet(self, cab_id: str, model: CabinetModel) -> None:
        # One AddNodes call per cabinet with the reference types spelled out: asyncua's
        # add_object browses the parent for its type on every call, which grows with the
        # number of cabinets already under Objects (quadratic at city size).
        state = model.state(self.clock.now())
        items = [
            node_item(
                self._nid(cab_id),
                cab_id,
                self.idx,
                ua.ObjectIds.ObjectsFolder,
                ua.ObjectIds.Organizes,
            ),
            node_item(
                self._nid(f"{cab_id}.Name"),
                "Name",
                self.idx,
                self._nid(cab_id),
                ua.ObjectIds.HasProperty,
                ua.Variant(model.cab.name, ua.VariantType.String),
            ),
        ]
        folders: set[str] = set()
        entries = []
        writable = []
        for p in self.profile.expanded():
            if p.node is None:
                continue
            parent = cab_id
            *path, leaf = p.node.split(".")
            for i in range(len(path)):
                key = f"{cab_id}.{'.'.join(path[: i + 1])}"
                if key not in folders:
                    folders.add(key)
                    items.append(node_item(self._nid(key), path[i], self.idx, self._nid(parent)))
                parent = key
            vt = VT[p.type]
            nid = self._nid(f"{cab_id}.{p.node}")
            value = ua.Variant(cast(state.get(p.key, 0), vt), vt)
            items.append(
                node_item(nid, leaf, self.idx, self._nid(parent), value=value, writable=p.writable)
            )
            if p.writable:
                writable.append((nid, int(p.key.removeprefix("circuit").split("_")[0])))
            entries.append((p.key, nid, vt))
        for res in await self.server.iserver.isession.add_nodes(items):
            res.StatusCode.check()
        for nid, circuit in writable:
            self.server.set_attribute_value_setter(nid, self._setter(model, circuit))
        self._nodes[cab_id] = entries
        args = [
            method_arg("circuit", ua.ObjectIds.UInt16, "circuit number, 1-based"),
            method_arg("on", ua.ObjectIds.Boolean, "true closes the contactor"),
        ]
        out = [method_arg("on", ua.ObjectIds.Boolean, "contactor state read back")]
        method = self.profile.methods.get("switch_circuit", "SwitchCircuit")
        await self.server.get_node(self._nid(cab_id)).add_method(
            self._nid(f"{cab_id}.{method}"),
            ua.QualifiedName(method, self.idx),
            self._method(cab_id, model),
            args,
            out,
        )

    def _setter(
        self, model: CabinetModel, circuit: int
    ) -> Callable[[NodeData, ua.AttributeIds, ua.DataValue], None]:
        def setter(node: NodeData, attr: ua.AttributeIds, dv: ua.DataValue) -> None:
            # A client write switches the contactor; our own periodic pushes only store.
            if dv is not self._internal and dv.Value is not None and dv.Value.Value is not None:
                if self.is_offline(model.cab.id):
                    raise ua.UaStatusCodeError(ua.StatusCodes.BadNoCommunication)
                model.command(circuit, bool(dv.Value.Value), self.clock.now())
                log.info("OPC-UA write %s circuit %d -> %s", model.cab.id, circuit, dv.Value.Value)
            node.attributes[attr].value = dv

        return setter

    def _method(self, cab_id: str, model: CabinetModel) -> Callable[..., object]:
        async def switch(
            parent: ua.NodeId, *args: ua.Variant
        ) -> ua.CallMethodResult | list[ua.Variant]:
            # Raising here would reach the client as BadUnexpectedError: return the status.
            if self.is_offline(cab_id):
                return bad_result(ua.StatusCodes.BadNoCommunication)
            if len(args) != 2:
                return bad_result(
                    ua.StatusCodes.BadArgumentsMissing
                    if len(args) < 2
                    else ua.StatusCodes.BadTooManyArguments
                )
            circuit, on = args[0].Value, args[1].Value
            arg_ok = [
                isinstance(circuit, int)
                and not isinstance(circuit, bool)
                and 1 <= circuit <= model.cab.circuits,
                isinstance(on, bool),
            ]
            if not all(arg_ok):
                log.info("SwitchCircuit on %s rejected: circuit=%r on=%r", cab_id, circuit, on)
                res = bad_result(ua.StatusCodes.BadInvalidArgument)
                res.InputArgumentResults = [
                    ua.StatusCode()
                    if ok
                    else ua.StatusCode(
                        ua.StatusCodes.BadOutOfRange if i == 0 else ua.StatusCodes.BadTypeMismatch
                    )
                    for i, ok in enumerate(arg_ok)
                ]
                return res
            t = self.clock.now()
            try:
                state = model.command(circuit, on, t)
            except CircuitError:
                return bad_result(ua.StatusCodes.BadInvalidArgument)
            log.info("SwitchCircuit %s circuit %d -> %s", cab_id, circuit, on)
            await self.push(cab_id, model.state(t), self.clock.stamp(t))
            return [ua.Variant(state, ua.VariantType.Boolean)]

        return switch

    async def push(
        self, cab_id: str, state: dict[str, float | bool] | None, stamp: float | None = None
    ) -> None:
        """Write a cabinet's values, source-stamped ``stamp`` (epoch s, default the clock's
        stamp of now); None marks them BadNoCommunication."""
        t = self.clock.stamp(self.clock.now()) if stamp is None else stamp
        now = datetime.fromtimestamp(t, UTC)
        for key, nid, vt in self._nodes[cab_id]:
            if state is None:
                dv = Sample(StatusCode=ua.StatusCode(ua.StatusCodes.BadNoCommunication))
            else:
                dv = Sample(ua.Variant(cast(state[key], vt), vt), SourceTimestamp=now)
            self._internal = dv
            await self.server.write_attribute_value(nid, dv)
        self._internal = None
