import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from chat.models import AgentProfile, Conversation, Department, Visitor, hash_token


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "correct-horse-battery")
        if create:
            self.save(update_fields=["password"])


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Department {n}")
    slug = factory.Sequence(lambda n: f"dept{n}")


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentProfile
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    display_name = factory.Sequence(lambda n: f"Agent {n}")
    max_chats = 3

    @factory.post_generation
    def departments(self, create, extracted, **kwargs):
        if create and extracted:
            self.departments.add(*extracted)


class VisitorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Visitor

    token_hash = factory.Sequence(lambda n: hash_token(f"token-{n}-padding-to-be-long-enough"))
    last_seen_at = factory.LazyFunction(timezone.now)


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    visitor = factory.SubFactory(VisitorFactory)
    department = factory.SubFactory(DepartmentFactory)
    created_at = factory.LazyFunction(timezone.now)
    queued_at = factory.LazyAttribute(lambda o: o.created_at)
    queue_order_at = factory.LazyAttribute(lambda o: o.created_at)


def give_role(user, role: str):
    """Put the user in one of the four role groups (compliance/roles.py).

    get_or_create: the groups come from a data migration, but tests that flush the database
    (transactional and browser tests) remove them.
    """
    from django.contrib.auth.models import Group

    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    return user
