"""The demo story a fresh district tells: a few realistic records made through the gateways' own APIs by the demo
staff, so that a newcomer's first look at the web UI finds something on every page.

* **prescription** — Dr Li at the hospital issues a prescription; the pharmacy's pharmacist reviews it; the doctor
  releases it to circulation; at the pharmacy it is claimed with the patient's pickup code, dispensed, checked by
  another staff member and handed over (DISPENSED);
* **drug batch** — the manufacturer commissions three sale units, ships them to the pharmacy, which receives them;
* **dataset** — the data department collects a dataset of air readings, authorises the hospital to share and
  analyse it, shares it and logs the analysis (its provenance graph);
* **evidence** — three records (a lab report, a dispensing note, a station's daily summary) anchored on chain.

Each part is one :class:`Chapter`; :func:`tell` runs those not yet told and returns what each made (with the web UI
link to see it) or why it failed. A failure is reported and leaves the district running; the district records the
parts told in ``district.json`` so that a restart tells them only once.

>>> [c.name for c in CHAPTERS]
['prescription', 'drug-batch', 'dataset', 'evidence']
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from shancheng.sdk.domain.drugtrace import nmpa_codes
from shancheng.sdk.errors import ShanchengError

__all__ = ["CHAPTERS", "Chapter", "Desks", "tell"]

#: seconds an evidence record may take to be anchored before the story stops waiting for it
ANCHOR_WAIT = 60.0
#: the NMPA drug id of the demo batch (7 digits) and the number of sale units in it
DRUG_ID = "8623456"
UNITS = 3
#: tries of a request whose answer was lost or said that it may be asked again, and the pause before the next (times
#: the tries so far)
ATTEMPTS = 5
RETRY_PAUSE = 2.0
#: seconds a write still running at the gateway under its key (a 409 ``idempotency-in-progress``) is waited for
RUNNING_WAIT = 600.0
#: answers under which the gateway has stored nothing for the key (a 429 is answered before the key is looked at,
#: a 5xx is not stored), or a proxy's (502, 504) while the gateway may still run the request or have finished it:
#: asked again under the same key, the gateway runs it, answers 409 while it runs or replays the finished answer
_ASK_AGAIN = {429, 502, 503, 504}
#: but a 503 ``not-final`` says the transaction was sent and not seen final in time: the gateway keeps no answer of a
#: 5xx, so asking again would send it again — it is a failure of the step
_SENT = "/not-final"
#: problem types of a write still running under the key (or that failed just now and was forgotten): ask again
_RUNNING = ("/idempotency-in-progress", "/idempotency-retry")
#: the node's call time limit (``CallAborted``): the gateway answers it with a stored 400 ``refused`` problem
#: ("eth_estimateGas failed: execution aborted (timeout = 5s) ...") — the transaction's gas estimate failed, so it
#: was not sent
_NOT_SENT = "execution aborted (timeout"
REVIEW = {"phar_prac_cert_no": "PHA2024001", "rx_chk_stas_codg": "1", "rx_chk_opnn": "用法用量合理"}


class StoryError(ShanchengError):
    """A step of the story was refused by a gateway."""


class Desks:
    """The demo staff's API clients: ``desk(org, subject)`` is an HTTP client of ``org``'s gateway signed in with
    ``subject``'s token; ``url(org)`` the gateway's base URL (its web UI)."""

    def __init__(self, urls: Mapping[str, str], tokens: Mapping[str, Mapping[str, str]], *,
                 timeout: float = 180.0) -> None:
        self._urls = dict(urls)
        self._tokens = {org: dict(users) for org, users in tokens.items()}
        self._timeout = timeout
        self._open: list[httpx.Client] = []
        self._org_ids: dict[str, int] = {}

    def url(self, org: str) -> str:
        return self._urls[org]

    def desk(self, org: str, subject: str) -> httpx.Client:
        client = httpx.Client(base_url=self._urls[org], timeout=self._timeout,
                              headers={"Authorization": f"Bearer {self._tokens[org][subject]}"})
        self._open.append(client)
        return client

    def org_id(self, org: str) -> int:
        """The organisation's id in Governance, as its admin's ``/api/v1/me`` says."""
        if org not in self._org_ids:
            self._org_ids[org] = int(call(self.desk(org, "admin"), "GET", "/api/v1/me")["org_id"])
        return self._org_ids[org]

    def close(self) -> None:
        for client in self._open:
            client.close()
        self._open.clear()


def call(http: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    """The JSON answer of one API request; a refusal raises :class:`StoryError` with the problem's detail.

    A write carries one ``Idempotency-Key`` for all its tries, so that the gateway runs it once however often it is
    asked: when the answer is lost (a connection error) or is a 429, 502, 503 or 504 (from the gateway, which stores
    nothing for them, or from a proxy, which proves nothing about the gateway), it is asked again under the same key
    — the gateway runs it if it never did, answers 409 ``idempotency-in-progress`` while it still runs (waited for
    up to :data:`RUNNING_WAIT` seconds) and replays the answer once it finished. A 503 ``not-final`` is not asked
    again: the transaction was sent, and the gateway, keeping no 5xx answer, would send it again. The one answer
    retried under a new key is the node's call time limit on the gas estimate (a stored 400 ``refused`` problem,
    see :data:`_NOT_SENT`): it proves the transaction was not sent, and the gateway would replay it under the old
    key. Every other answer of 400 or more is a refusal. At most :data:`ATTEMPTS` tries, not counting the waits for
    a running write."""
    write = method != "GET"
    key = _idempotency_key() if write else None
    tries = 0
    running_until = time.monotonic() + RUNNING_WAIT
    while True:
        try:
            answer = http.request(method, path, json=body, headers={"Idempotency-Key": key} if key else {})
        except httpx.TransportError:
            tries += 1
            if tries >= ATTEMPTS:
                raise
            time.sleep(RETRY_PAUSE)
            continue
        if answer.status_code < 400:
            return answer.json()
        kind, detail = _problem(answer)
        if answer.status_code == 409 and kind.endswith(_RUNNING) and time.monotonic() < running_until:
            time.sleep(RETRY_PAUSE)
            continue
        tries += 1
        not_sent = answer.status_code == 400 and kind.endswith("/refused") and _NOT_SENT in detail
        again = answer.status_code in _ASK_AGAIN and not kind.endswith(_SENT)
        if tries >= ATTEMPTS or not (again or not_sent):
            raise StoryError(f"{method} {path} at {http.base_url} answered {answer.status_code}: {detail[:300]}")
        if not_sent and write:
            key = _idempotency_key()
        time.sleep(RETRY_PAUSE * tries)


def _idempotency_key() -> str:
    return f"district-story-{secrets.token_hex(12)}"


def _problem(answer: httpx.Response) -> tuple[str, str]:
    """The problem type and detail of a refusal (the text itself when it is no problem document)."""
    try:
        problem = answer.json()
    except ValueError:
        return "", answer.text
    if not isinstance(problem, dict):
        return "", answer.text
    return str(problem.get("type") or ""), str(problem.get("detail") or answer.text)


@dataclass(frozen=True)
class Told:
    """What a chapter made: a line for the summary, the page to see it and who signs in there."""

    title: str
    link: str
    sign_in_as: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "link": self.link, "sign_in_as": self.sign_in_as, **self.detail}


@dataclass(frozen=True)
class Chapter:
    name: str
    tell: Callable[[Desks], Told]


def _prescription(d: Desks) -> Told:
    doctor, pharmacist, dispenser = d.desk("hospital", "dr.li"), d.desk("pharmacy", "ph.zhang"), \
        d.desk("pharmacy", "disp.chen")
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(microsecond=0) - dt.timedelta(minutes=5)
    document = {
        "hosp_rxno": f"CQ{now:%Y%m%d}{int(time.time()) % 100_000:05d}", "rx_type_code": "1",
        "prsc_time": now.isoformat(), "valid_days": 3,
        "drugs": [{"med_list_codg": "XJ01CAA040A001010100028", "drug_genname": "阿莫西林胶囊", "drug_dosform": "胶囊剂",
                   "drug_spec": "0.25g*24粒", "drug_cnt": "2", "drug_cnt_unit": "盒", "medc_days": 5}],
    }
    rx = call(doctor, "POST", "/api/v1/prescriptions", {"prescription": document})["rx_id"]
    steps = f"/api/v1/prescriptions/{rx}"
    call(pharmacist, "POST", f"{steps}/approve", {"review": REVIEW})
    code = call(doctor, "POST", f"{steps}/circulate", {})["pickup_code"]  # handed to the patient
    call(pharmacist, "POST", f"{steps}/claim", {"pickup_code": code})  # the patient shows it at the pharmacy
    call(dispenser, "POST", f"{steps}/dispense", {})
    call(pharmacist, "POST", f"{steps}/check", {})  # another staff member than the dispenser checks
    state = call(pharmacist, "POST", f"{steps}/hand_over", {})["state"]
    return Told(title=f"处方 Prescription {document['hosp_rxno']} (阿莫西林胶囊), {state} at the pharmacy",
                link=f"{d.url('pharmacy')}/ui/prescriptions?{urlencode({'rx': rx})}", sign_in_as="pharmacy ph.zhang",
                detail={"rx_id": rx, "state": state})


def _drug_batch(d: Desks) -> Told:
    maker, pharmacy = d.org_id("manufacturer"), d.org_id("pharmacy")
    first = int(time.time()) % 10**8 * 10  # serials of this district's batch
    codes = nmpa_codes(DRUG_ID, first, UNITS)  # the batch's sale units
    factory, shop = d.desk("manufacturer", "mfr.wu"), d.desk("pharmacy", "ph.zhang")
    call(factory, "POST", "/api/v1/trace/register", {"codes": codes, "level": 1,
                                                     "document": {"batch": f"B{first}", "drug": "阿莫西林胶囊"}})
    call(factory, "POST", "/api/v1/trace/ship", {"codes": codes, "to": pharmacy})  # a sale (bill 201)
    call(shop, "POST", "/api/v1/trace/receive", {"codes": codes, "maker_org": maker})  # a purchase (bill 102)
    query = urlencode({"code": codes[0], "maker": maker})
    return Told(title=f"药品追溯 Drug batch of {UNITS} units, manufacturer → pharmacy",
                link=f"{d.url('pharmacy')}/ui/trace?{query}", sign_in_as="pharmacy ph.zhang",
                detail={"codes": codes, "maker_org": maker})


def _dataset(d: Desks) -> Told:
    steward, hospital = d.desk("department", "steward.he"), d.org_id("hospital")
    readings = {"record": {"dataset": "渝中区 PM2.5 小时均值 2024-06", "stations": ["SC500103AIR0001"], "rows": 720}}
    dataset = call(steward, "POST", "/api/v1/datasets", {"content": readings})["generated"]["dataset_id"]
    plan = call(steward, "POST", "/api/v1/authorisations", {
        "dataset_id": dataset, "recipient_org": hospital, "steps": ["share", "analyze"],
        "expires_at": int(time.time()) + 180 * 86_400, "purpose_code": 7,
        "purpose": {"record": {"study": "PM2.5 与呼吸科就诊量"}}})["authorisation_id"]
    shared = call(steward, "POST", f"/api/v1/datasets/{dataset}/activities", {
        "step": "share", "recipient_org": hospital, "plan": plan})["activity_id"]
    call(steward, "POST", f"/api/v1/datasets/{dataset}/activities", {
        "step": "analyze", "content": {"record": {"result": "PM2.5 每升高 10 μg/m³，就诊量增加 2.1%"}},
        "informed_by": shared})
    return Told(title="数据溯源 Dataset of air readings, shared with the hospital and analysed",
                link=f"{d.url('department')}/ui/provenance?{urlencode({'dataset': dataset})}",
                sign_in_as="department steward.he", detail={"dataset_id": dataset})


def _evidence(d: Desks) -> Told:
    records = (("hospital", "dr.li", "lab.report", {"patient": "P-0001", "test": "血常规", "wbc": 6.1}),
               ("pharmacy", "ph.zhang", "dispensing.note", {"drug": "阿莫西林胶囊", "boxes": 2, "advice": "饭后服用"}),
               ("monitoring", "op.zhao", "station.daily", {"mn": "SC500103AIR0001", "pm25_avg": 38.5}))
    made = []
    for org, subject, kind, record in records:
        http = d.desk(org, subject)
        made.append((org, subject, http, call(http, "POST", "/api/v1/evidence/records",
                                              {"record": record, "kind": kind})["id"]))
    deadline = time.monotonic() + ANCHOR_WAIT
    anchored = 0
    for _org, _subject, http, rid in made:
        while call(http, "GET", f"/api/v1/evidence/records/{rid}")["status"] != "anchored":
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        else:
            anchored += 1
    org, subject, _, rid = made[0]
    return Told(title=f"存证 Evidence: {len(made)} records, {anchored} anchored on chain",
                link=f"{d.url(org)}/ui/evidence?{urlencode({'record': rid})}", sign_in_as=f"{org} {subject}",
                detail={"records": [{"org": o, "id": r} for o, _, _, r in made], "anchored": anchored})


CHAPTERS = (Chapter("prescription", _prescription), Chapter("drug-batch", _drug_batch),
            Chapter("dataset", _dataset), Chapter("evidence", _evidence))


def tell(desks: Desks, *, done: Mapping[str, Any],
         on_told: Callable[[str, dict[str, Any]], None]) -> dict[str, str]:
    """Tell the chapters not in ``done``; ``on_told(name, told)`` is called after each one told (to record it).
    Returns the failures: chapter name -> reason."""
    failed: dict[str, str] = {}
    for chapter in CHAPTERS:
        if chapter.name in done:
            continue
        try:
            told = chapter.tell(desks)
        except Exception as exc:  # noqa: BLE001 - a failed chapter is reported; the district runs on
            failed[chapter.name] = f"{type(exc).__name__}: {exc}"
            continue
        on_told(chapter.name, told.to_json())
    return failed
