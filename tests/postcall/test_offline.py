"""The offline post-call fallback: the exact summary and fields its documented rules give."""

from __future__ import annotations

import pytest

from bridge.agents.model import CollectField
from bridge.postcall.offline import CallInfo, extract, keywords, offline_answer, summarize
from bridge.session.actions import JournalTurn


def agent(text: str, at: float = 0.0) -> JournalTurn:
    return JournalTurn("agent", text, at)


def caller(text: str, at: float = 0.0) -> JournalTurn:
    return JournalTurn("user", text, at)


BOOKING = (
    agent("Hello, this is Brightsmile dental. How can I help?"),
    caller("Hi, this is ada lovelace calling. I would like to book a cleaning for tomorrow."),
    agent("Sure. How many people are coming?"),
    caller("twenty five"),
    agent("Would you like a text reminder?"),
    caller("yes please"),
    agent("What is your order number?"),
    caller("It's A1234."),
    caller("My email is ada@example.com and that's all."),
    agent("Your cleaning is booked for tomorrow at ten. Goodbye."),
)
FIELDS = (
    CollectField("caller_name", "The caller's name"),
    CollectField("party_size", "How many people", "number"),
    CollectField("reminder", "Whether the caller wants a text reminder", "boolean"),
    CollectField("visit_type", "", "enum", ("checkup", "cleaning")),
    CollectField("order_number", "The order number"),
    CollectField("email", "Email address"),
    CollectField("callback", "A call back later", "boolean"),
)
INFO = CallInfo(
    carrier="twilio",
    agent="front",
    from_number="+15550001111",
    duration_secs=65.2,
    end_reason="caller hung up",
)


def test_the_summary_of_a_booking() -> None:
    assert summarize(INFO, BOOKING) == (
        "Inbound twilio call from +15550001111 with agent front, 1 min 5 s, ended completed "
        "(caller hung up). 10 turns, 5 from the caller. The caller said: “Hi, this is ada "
        "lovelace calling”; “I would like to book a cleaning for tomorrow”; “twenty five”. "
        "The agent said: “Your cleaning is booked for tomorrow at ten”."
    )


def test_the_fields_of_a_booking() -> None:
    assert extract(BOOKING, FIELDS) == {
        "caller_name": "Ada Lovelace",
        "party_size": 25,
        "reminder": True,
        "visit_type": "cleaning",
        "order_number": "A1234",
        "email": "ada@example.com",
        "callback": None,
    }


def test_a_call_without_conversation() -> None:
    info = CallInfo(direction="outbound", to_number="+15550002222", status="no-answer")
    summary, collected = offline_answer(info, (), FIELDS[:2])
    assert (
        summary == "Outbound call to +15550002222, ended no-answer. No conversation was recorded."
    )
    assert collected == {"caller_name": None, "party_size": None}


def test_only_the_greeting() -> None:
    turns = (agent("Hello, you have reached acme."),)
    assert summarize(CallInfo(duration_secs=3), turns) == (
        "Inbound call, 3 s, ended completed. 1 turn, 0 from the caller."
    )


def test_keywords_leave_common_words_out() -> None:
    assert keywords(CollectField("party_size", "How many people are coming with the caller")) == (
        "party",
        "size",
        "people",
        "coming",
    )


@pytest.mark.parametrize(
    ("turns", "value"),
    [
        ((agent("Do you want a reminder?"), caller("no thanks")), False),
        ((agent("Do you want a reminder?"), caller("please don't")), False),
        ((agent("Do you want a reminder?"), caller("sure")), True),
        ((caller("I want a reminder, yes"),), True),
        ((agent("Do you want a reminder?"), caller("maybe")), None),
        ((agent("Do you want a reminder? Also, anything else?"), caller("yes")), None),
        ((agent("Reminder?"), caller("yes"), agent("Really?"), caller("no")), True),
        ((agent("Reminder?"), caller("yes"), caller("reminders, no actually")), False),
    ],
)
def test_booleans(turns: tuple[JournalTurn, ...], value: bool | None) -> None:
    field = CollectField("reminder", "", "boolean")
    assert extract(turns, [field]) == {"reminder": value}


@pytest.mark.parametrize(
    ("turns", "value"),
    [
        ((caller("we are 4 guests"),), 4),
        ((caller("at 10 for four guests"),), 4),  # the number nearest the keyword
        ((agent("How many guests?"), caller("three")), 3),
        ((agent("How many guests?"), caller("about 1,200")), 1200),
        ((caller("guests: 4.5"),), 4.5),
        ((caller("ninety nine guests"),), 99),
        ((caller("guests"),), None),
        ((caller("I have 3 children"),), None),  # no keyword, not an answer
    ],
)
def test_numbers(turns: tuple[JournalTurn, ...], value: float | None) -> None:
    field = CollectField("guests", "", "number")
    assert extract(turns, [field]) == {"guests": value}


@pytest.mark.parametrize(
    ("turns", "value"),
    [
        ((caller("a check-up please"),), "check-up"),
        ((caller("a check up please"),), "check-up"),
        ((caller("cleaning, no wait, a check up"),), "check-up"),
        ((caller("a cleaning."), caller("actually a Root Canal")), "root_canal"),
        ((agent("A cleaning?"), caller("yes")), None),  # the agent's words do not count
    ],
)
def test_enums(turns: tuple[JournalTurn, ...], value: str | None) -> None:
    field = CollectField("visit", "", "enum", ("cleaning", "check-up", "root_canal"))
    assert extract(turns, [field]) == {"visit": value}


@pytest.mark.parametrize(
    ("turns", "value"),
    [
        ((caller("my name is grace hopper"),), "Grace Hopper"),
        ((caller("hello, call me Grace."),), "Grace"),
        ((caller("I'm calling about my bill"),), None),
        ((caller("I'm fine"),), None),  # "I'm" counts only as an answer to a name question
        ((agent("Who am I speaking with?"), caller("Grace")), None),  # no keyword asked
        ((agent("May I have your name?"), caller("it's grace hopper")), "Grace Hopper"),
        ((agent("And your name?"), caller("sure, I'm Grace")), "Grace"),
        ((agent("Your name?"), caller("I would rather not say that to you")), None),
        ((caller("this is Ada"), caller("sorry, my name is Grace")), "Grace"),
    ],
)
def test_names(turns: tuple[JournalTurn, ...], value: str | None) -> None:
    field = CollectField("caller_name")
    assert extract(turns, [field]) == {"caller_name": value}


@pytest.mark.parametrize(
    ("turns", "value"),
    [
        ((caller("My order number is A1234 and it is late."),), "A1234"),
        ((caller("the order: B77"),), "B77"),
        ((agent("What's the order?"), caller("yes, B 77")), "B 77"),
        ((agent("What's the order?"), caller("one two three four five six seven")), None),
        ((caller("where is my order"),), None),
    ],
)
def test_strings(turns: tuple[JournalTurn, ...], value: str | None) -> None:
    field = CollectField("order", "The order id")
    assert extract(turns, [field]) == {"order": value}
