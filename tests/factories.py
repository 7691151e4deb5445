import factory
from django.contrib.auth import get_user_model

from incidents.models import Incident, Service, Severity, Status


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct-horse-battery-staple")


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    slug = factory.Sequence(lambda n: f"svc-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class IncidentFactory(factory.django.DjangoModelFactory):
    """Rows only, for read tests; behaviour tests go through incidents.services."""

    class Meta:
        model = Incident

    title = factory.Sequence(lambda n: f"Incident {n}")
    severity = Severity.HIGH
    status = Status.OPEN
