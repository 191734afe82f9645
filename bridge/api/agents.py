"""``GET /v1/agents``: the organization's agents (names, engines; no secrets)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from bridge.api.auth import Reader
from bridge.runtime.services import Services

__all__ = ["router"]

router = APIRouter(prefix="/v1/agents", tags=["agents"])


class AgentOut(BaseModel):
    name: str
    engine: str
    language: str
    default: bool
    has_greeting: bool


class AgentListOut(BaseModel):
    agents: list[AgentOut]


@router.get("", response_model=AgentListOut, summary="List agents")
async def list_agents(request: Request, principal: Reader) -> AgentListOut:
    services: Services = request.app.state.services
    registry = services.agents
    agents = [registry.get(name) for name in registry.names(principal.org)]
    return AgentListOut(
        agents=[
            AgentOut(
                name=a.name,
                engine=a.engine,
                language=a.language,
                default=a.name == registry.default_name,
                has_greeting=bool(a.initial_message),
            )
            for a in agents
        ]
    )
