"""Loading agents/*.toml: the repository's own agents, and every way a file can be wrong."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bridge.agents import Agent, AgentRegistry, MissingVariablesError, load_agent, load_agents
from bridge.agents.template import render_agent
from bridge.config import Settings
from bridge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
AGENTS_DIR = REPO / "agents"
PROMPTS_DIR = REPO / "prompts"

TOOL = """
[[tools]]
name = "lookup_order"
description = "Find an order."
webhook = "https://tools.example.com/lookup"
[tools.parameters]
type = "object"
required = ["order_id"]
[tools.parameters.properties.order_id]
type = "string"
"""


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    (directory / "basic.md").write_text("Help {{customer}} politely.\n", encoding="utf-8")
    return directory


def write(tmp_path: Path, text: str, name: str = "agent") -> Path:
    directory = tmp_path / "agents"
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, prompts: Path, text: str, env: dict[str, str] | None = None) -> Agent:
    return load_agent(write(tmp_path, text), prompts, env or {})


# --- the repository's agents ----------------------------------------------------------------


def test_repository_agents_load() -> None:
    agents = load_agents(AGENTS_DIR, PROMPTS_DIR, {})
    assert set(agents) >= {"default", "demo", "support"}
    for agent in agents.values():
        assert agent.engine in ("openai_realtime", "pipeline")
        assert agent.prompt_template.strip()


def test_repository_default_agent_is_the_offline_demo() -> None:
    registry = AgentRegistry.from_dir(AGENTS_DIR, PROMPTS_DIR, {}, Settings().default_agent)
    agent = registry.get(None)
    assert agent.name == registry.default_name == "demo"
    assert agent.engine == "pipeline"
    assert agent.dialog is not None
    assert agent.initial_message  # speaks first
    assert [t.name for t in agent.tools] == ["book_appointment"]


def test_repository_receptionist_agent() -> None:
    registry = AgentRegistry.from_dir(AGENTS_DIR, PROMPTS_DIR, {})
    agent = registry.get("default")
    assert agent.voice == "marin"
    assert agent.initial_message  # speaks first
    assert agent.end_call_enabled
    assert agent.tools == ()
    assert "caller_name" in agent.variables  # the prompt's variable has a default
    rendered = render_agent(agent, {})
    assert "{{" not in rendered.instructions
    assert "Dana" in render_agent(agent, {"caller_name": "Dana"}).instructions


def test_repository_support_agent() -> None:
    agent = AgentRegistry.from_dir(AGENTS_DIR, PROMPTS_DIR, {}).get("support")
    (tool,) = agent.tools
    assert tool.name == "lookup_order"
    assert tool.webhook == "http://127.0.0.1:8099/tools/lookup_order"
    assert tool.parameters["type"] == "object"
    assert tool.parameters["required"] == ["order_id"]
    assert tool.parameters["properties"]["order_id"]["type"] == "string"
    assert agent.tool_secret is None
    assert "customer_name" not in agent.variables  # required from every call
    with pytest.raises(MissingVariablesError, match="customer_name"):
        render_agent(agent, {})
    rendered = render_agent(agent, {"customer_name": "Dana"})
    assert "Dana" in rendered.instructions
    assert rendered.initial_message is not None
    assert "Dana" in rendered.initial_message


def test_repository_support_agent_signs_with_the_fallback_secret() -> None:
    agents = load_agents(AGENTS_DIR, PROMPTS_DIR, {"CALLBRIDGE_TOOL_SECRET": "s3"})
    assert agents["support"].tool_secret == "s3"


# --- a valid file, field by field -----------------------------------------------------------


def test_full_agent(tmp_path: Path, prompts: Path) -> None:
    agent = load(
        tmp_path,
        prompts,
        """
        name = "sales"
        engine = "openai_realtime"
        model = "gpt-realtime-mini"
        voice = "cedar"
        language = "de"
        prompt = "basic"
        initial_message = "Hallo {{customer}}!"
        transcription_model = ""
        temperature = 1
        end_call = false
        max_duration_s = 60
        dtmf_flush_s = 0.5
        tool_secret_env = "SALES_SECRET"
        [variables]
        customer = "there"
        """
        + TOOL.replace("webhook =", "timeout_s = 2\nwebhook ="),
        env={"SALES_SECRET": "abc", "CALLBRIDGE_TOOL_SECRET": "other"},
    )
    assert agent == Agent(
        name="sales",
        engine="openai_realtime",
        model="gpt-realtime-mini",
        voice="cedar",
        language="de",
        prompt_template="Help {{customer}} politely.\n",
        variables={"customer": "there"},
        initial_message="Hallo {{customer}}!",
        tools=agent.tools,
        tool_secret="abc",
        transcription_model=None,
        temperature=1.0,
        end_call_enabled=False,
        max_duration_s=60.0,
        dtmf_flush_s=0.5,
    )
    (tool,) = agent.tools
    assert (tool.name, tool.webhook, tool.timeout_s) == (
        "lookup_order",
        "https://tools.example.com/lookup",
        2.0,
    )


def test_minimal_agent_takes_defaults(tmp_path: Path, prompts: Path) -> None:
    agent = load(tmp_path, prompts, 'instructions = "Be brief."')
    assert agent == Agent(name="agent", prompt_template="Be brief.")


def test_tool_defaults(tmp_path: Path, prompts: Path) -> None:
    text = 'instructions = "x"\n[[tools]]\nname = "ping"\ndescription = "Ping."'
    (tool,) = load(tmp_path, prompts, text).tools
    assert tool.webhook is None
    assert tool.timeout_s == 5.0
    assert tool.parameters == {"type": "object", "properties": {}}


def test_unsigned_webhooks_are_logged(
    tmp_path: Path, prompts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.agents.loader"):
        load(tmp_path, prompts, 'instructions = "x"\n' + TOOL)
    assert "unsigned" in caplog.text


def test_fallback_secret_empty_means_none(tmp_path: Path, prompts: Path) -> None:
    agent = load(tmp_path, prompts, 'instructions = "x"', env={"CALLBRIDGE_TOOL_SECRET": ""})
    assert agent.tool_secret is None


# --- every way a file can be wrong ----------------------------------------------------------

BAD = {
    "unknown key": ('instructions = "x"\nvoise = "marin"', "voise", "did you mean 'voice'"),
    "string field wrong type": ('instructions = "x"\nvoice = 3', "voice", "must be a string"),
    "empty string": ('instructions = "x"\nmodel = " "', "model", "must not be empty"),
    "empty greeting": ('instructions = "x"\ninitial_message = ""', "initial_message", "empty"),
    "bad agent name": ('name = "a b"\ninstructions = "x"', "name", "letters"),
    "number as string": ('instructions = "x"\ntemperature = "hot"', "temperature", "number"),
    "bool as number": ('instructions = "x"\nmax_duration_s = true', "max_duration_s", "number"),
    "temperature range": ('instructions = "x"\ntemperature = 2.5', "temperature", "at most 2"),
    "zero duration": ('instructions = "x"\nmax_duration_s = 0', "max_duration_s", "greater"),
    "negative flush": ('instructions = "x"\ndtmf_flush_s = -1', "dtmf_flush_s", "greater"),
    "infinite duration": ('instructions = "x"\nmax_duration_s = inf', "max_duration_s", "inf"),
    "end_call not bool": ('instructions = "x"\nend_call = "yes"', "end_call", "true or false"),
    "no prompt": ('voice = "marin"', "prompt", "is required"),
    "prompt and instructions": ('prompt = "basic"\ninstructions = "x"', "instructions", "not both"),
    "missing prompt file": ('prompt = "nope"', "prompt", "nope.md not found"),
    "prompt path escape": ('prompt = "../secret"', "prompt", "template name"),
    "stray braces inline": ('instructions = "hi {{a b}}"', "instructions", "placeholder"),
    "stray braces greeting": (
        'instructions = "x"\ninitial_message = "{{ oops"',
        "initial_message",
        "placeholder",
    ),
    "variables not table": ('instructions = "x"\nvariables = "a"', "variables", "table"),
    "variable not string": ('instructions = "x"\n[variables]\nn = 1', "variables.n", "string"),
    "bad variable name": ('instructions = "x"\n[variables]\n"a-b" = "1"', "variables.a-b", "name"),
    "tools not array": ('instructions = "x"\n[tools]\nname = "t"', "tools", "array of tables"),
    "tool not table": ('instructions = "x"\ntools = [1]', "tools[0]", "must be a table"),
    "tool unknown key": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\nurl = "http://h"',
        "tools[0].url",
        "unknown key",
    ),
    "tool without name": ('instructions = "x"\n[[tools]]\ndescription = "d"', "name", "required"),
    "tool without description": (
        'instructions = "x"\n[[tools]]\nname = "t"',
        "tools[0].description",
        "is required",
    ),
    "bad tool name": (
        'instructions = "x"\n[[tools]]\nname = "look up"\ndescription = "d"',
        "tools[0].name",
        "letters",
    ),
    "reserved tool": (
        'instructions = "x"\n[[tools]]\nname = "end_call"\ndescription = "d"',
        "tools[0].name",
        "built-in",
    ),
    "duplicate tool": ('instructions = "x"\n' + TOOL + TOOL, "tools[1].name", "duplicate"),
    "tool timeout": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\ntimeout_s = 0',
        "tools[0].timeout_s",
        "greater than 0",
    ),
    "parameters not object": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\n'
        '[tools.parameters]\ntype = "string"',
        "tools[0].parameters",
        'type = "object"',
    ),
    "parameters without type": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\nparameters = {}',
        "tools[0].parameters",
        'type = "object"',
    ),
    "parameters not table": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\nparameters = "{}"',
        "tools[0].parameters",
        "must be a table",
    ),
    "properties not table": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\n'
        'parameters = {type = "object", properties = 1}',
        "tools[0].parameters.properties",
        "table",
    ),
    "required not strings": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\n'
        'parameters = {type = "object", required = [1]}',
        "tools[0].parameters.required",
        "array of strings",
    ),
    "required unknown property": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\n'
        'parameters = {type = "object", required = ["id"]}',
        "tools[0].parameters.required",
        "'id' is not in",
    ),
    "parameters with a date": (
        'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\n'
        'parameters = {type = "object", properties = {d = {default = 2024-01-01}}}',
        "tools[0].parameters",
        "date",
    ),
    "secret variable unset": (
        'instructions = "x"\ntool_secret_env = "MY_SECRET"',
        "tool_secret_env",
        "MY_SECRET is not set",
    ),
}

BAD_URLS = [
    "ftp://tools.example.com/x",
    "tools.example.com/x",
    "http://",
    "https:///path",
    "http://host:99999/x",
    "http://host:port/x",
    "http://exa mple.com/",
    "javascript:alert(1)",
    "",
]


@pytest.mark.parametrize(("text", "field", "problem"), BAD.values(), ids=list(BAD))
def test_bad_agent_file(tmp_path: Path, prompts: Path, text: str, field: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_agent(path, prompts, {})
    message = caught.value.message
    assert message.startswith(f"{path}: "), message
    assert f": {field}: " in message or f".{field}: " in message, message
    assert problem in message, message


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_webhook_url(tmp_path: Path, prompts: Path, url: str) -> None:
    path = write(
        tmp_path, f'instructions = "x"\n[[tools]]\nname = "t"\ndescription = "d"\nwebhook = "{url}"'
    )
    with pytest.raises(ConfigError, match=r"tools\[0\]\.webhook: ") as caught:
        load_agent(path, prompts, {})
    assert str(path) in caught.value.message


def test_stray_braces_in_prompt_file_name_both_files(tmp_path: Path, prompts: Path) -> None:
    (prompts / "broken.md").write_text("ok\n{{ not valid }}\n", encoding="utf-8")
    path = write(tmp_path, 'prompt = "broken"')
    with pytest.raises(ConfigError) as caught:
        load_agent(path, prompts, {})
    assert caught.value.message.startswith(f"{path}: prompt: {prompts / 'broken.md'}: line 2: ")


def test_empty_prompt_file(tmp_path: Path, prompts: Path) -> None:
    (prompts / "empty.md").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"prompt: prompt file .* is empty"):
        load(tmp_path, prompts, 'prompt = "empty"')


def test_prompt_not_utf8(tmp_path: Path, prompts: Path) -> None:
    (prompts / "latin.md").write_bytes(b"caf\xe9")
    with pytest.raises(ConfigError, match=r"prompt: .* not valid UTF-8"):
        load(tmp_path, prompts, 'prompt = "latin"')


def test_prompt_is_a_directory(tmp_path: Path, prompts: Path) -> None:
    (prompts / "dir.md").mkdir()
    with pytest.raises(ConfigError, match="prompt: cannot read"):
        load(tmp_path, prompts, 'prompt = "dir"')


def test_invalid_toml(tmp_path: Path, prompts: Path) -> None:
    path = write(tmp_path, 'voice = \ninstructions = "x"')
    with pytest.raises(ConfigError, match=r"agent\.toml: invalid TOML: .*line 1"):
        load_agent(path, prompts, {})


def test_agent_file_not_utf8(tmp_path: Path, prompts: Path) -> None:
    path = write(tmp_path, "")
    path.write_bytes(b'instructions = "caf\xe9"')
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_agent(path, prompts, {})


def test_agent_file_missing(tmp_path: Path, prompts: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read"):
        load_agent(tmp_path / "nope.toml", prompts, {})


def test_secret_never_appears_in_errors(tmp_path: Path, prompts: Path) -> None:
    text = 'tool_secret_env = "S"\ninstructions = "x"\nvoice = 1'
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, prompts, text, env={"S": "hunter2-secret"})
    assert "hunter2" not in caught.value.message


# --- directories and the registry -----------------------------------------------------------


def test_load_agents_keys_by_name_and_rejects_duplicates(tmp_path: Path, prompts: Path) -> None:
    write(tmp_path, 'instructions = "x"', name="one")
    write(tmp_path, 'name = "uno"\ninstructions = "x"', name="two")
    assert sorted(load_agents(tmp_path / "agents", prompts, {})) == ["one", "uno"]
    duplicate = write(tmp_path, 'name = "one"\ninstructions = "x"', name="three")
    with pytest.raises(ConfigError, match="agent 'one' is already defined in") as caught:
        load_agents(tmp_path / "agents", prompts, {})
    assert caught.value.message.startswith(f"{duplicate}: name: ")


def test_load_agents_missing_directory(tmp_path: Path, prompts: Path) -> None:
    with pytest.raises(ConfigError, match="agents directory not found"):
        load_agents(tmp_path / "missing", prompts, {})


def test_registry() -> None:
    registry = AgentRegistry({"a": Agent(name="a"), "b": Agent(name="b")}, default_name="b")
    assert registry.default_name == "b"
    assert registry.get(None).name == "b"
    assert registry.get("a").name == "a"
    assert registry.names() == ["a", "b"]
    assert "a" in registry
    assert "z" not in registry
    assert len(registry) == 2
    with pytest.raises(ConfigError, match=r"^unknown agent 'x'$"):
        registry.get("x")


def test_registry_needs_its_default() -> None:
    with pytest.raises(ConfigError, match=r"default agent 'default' is not defined \(agents: a\)"):
        AgentRegistry({"a": Agent(name="a")})
    with pytest.raises(ConfigError, match=r"\(agents: none\)"):
        AgentRegistry({}, default_name="x")


def test_audio_format_is_checked(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    good = tmp_path / "hifi.toml"
    good.write_text('instructions = "x"\naudio_format = "pcm16/24000"\n')
    assert load_agent(good, prompts, {}).audio_format == "pcm16/24000"
    bad = tmp_path / "bad.toml"
    bad.write_text('instructions = "x"\naudio_format = "mp3"\n')
    with pytest.raises(ConfigError, match="audio_format: must be one of pcmu"):
        load_agent(bad, prompts, {})
