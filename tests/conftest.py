"""Shared personas and helpers. Real-mode tests are marked `realmode` and need DATABASE_URL+REDIS_URL."""

from __future__ import annotations

import os

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections

from chat import dbpool, message_fast_path
from chat.models import AgentProfile
from compliance import roles
from tests.factories import AgentFactory, DepartmentFactory, UserFactory, give_role

REAL_MODE = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))


def pytest_collection_modifyitems(config, items):
    skip_real = pytest.mark.skip(reason="real mode only: set DATABASE_URL and REDIS_URL (see README)")
    for item in items:
        if "realmode" in item.keywords and not REAL_MODE:
            item.add_marker(skip_real)


@pytest.fixture(autouse=True)
def _no_inprocess_sweeper(settings):
    # Tests call services.sweep() themselves with explicit times.
    settings.CHAT_INPROCESS_SWEEPER = False
    # Likewise the reporting scheduler thread (tests call reporting.scheduler.tick()).
    settings.REPORTING_INPROCESS_SCHEDULER = False


@pytest.fixture(autouse=True)
def _message_connections_closed():
    # The message threads, the fast path and the thread Channels shares for database work keep
    # connections of their own (real mode): closed after each test, or the test database could not
    # be dropped at the end ("being accessed by other users").
    yield
    message_fast_path.close_all()
    dbpool.shut_down()
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def department(db):
    return DepartmentFactory(name="Patient support", slug="support")


@pytest.fixture
def other_department(db):
    return DepartmentFactory(name="Billing", slug="billing")


def _agent(username: str, name: str, departments, **kwargs) -> AgentProfile:
    user = give_role(UserFactory(username=username), roles.AGENT)
    return AgentFactory(user=user, display_name=name, departments=departments, **kwargs)


@pytest.fixture
def agent(department):
    return _agent("alice", "Alice Agent", [department])


@pytest.fixture
def second_agent(department):
    return _agent("bob", "Bob Agent", [department])


@pytest.fixture
def make_agent():
    return _agent


@pytest.fixture
def supervisor(db):
    # Still a superuser: chat's selectors let only superusers into other agents' conversations
    # until department-scoped supervision lands there (compliance.roles.supervised_department_ids).
    return give_role(UserFactory(username="sam", is_superuser=True), roles.SUPERVISOR)


@pytest.fixture
def department_supervisor(department):
    """A Supervisor by role alone (no superuser flag), overseeing the Patient support department."""
    user = give_role(UserFactory(username="sue"), roles.SUPERVISOR)
    AgentFactory(user=user, display_name="Sue Supervisor", departments=[department])
    return user


@pytest.fixture
def compliance_officer(db):
    return give_role(UserFactory(username="carol"), roles.COMPLIANCE_OFFICER)


@pytest.fixture
def administrator(db):
    return give_role(UserFactory(username="ada"), roles.ADMINISTRATOR)


@pytest.fixture
def channel_layer_settings(settings):
    return settings.CHANNEL_LAYERS


def real_mode() -> bool:
    return REAL_MODE and settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture(autouse=True)
def _fast_password_hashing(request, settings):
    # PBKDF2 at production strength costs ~0.5 s per user on this hardware; tests check
    # behaviour, not hashing strength. Not for browser tests: their server process logs users
    # in with the real hashers and could not check an MD5 hash.
    if request.node.get_closest_marker("browser") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
