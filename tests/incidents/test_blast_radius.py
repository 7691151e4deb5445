import pytest

from incidents import services
from incidents.models import Severity
from incidents.selectors import blast_radius, incident_blast_radius

from ..factories import ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    s = {slug: ServiceFactory(slug=slug) for slug in ["frontend", "catalog", "checkout", "payment", "database", "reports", "search"]}
    s["frontend"].depends_on.set([s["catalog"], s["checkout"]])
    s["checkout"].depends_on.set([s["payment"], s["database"]])
    s["payment"].depends_on.set([s["database"]])
    s["reports"].depends_on.set([s["database"]])
    s["search"].depends_on.set([s["catalog"]])
    return s


def names(rows):
    return [(svc.slug, d) for svc, d in rows]


def test_dependents_are_found_transitively_with_distance(shop):
    assert names(blast_radius([shop["payment"]])) == [("checkout", 1), ("frontend", 2)]
    assert names(blast_radius([shop["database"]])) == [
        ("checkout", 1), ("payment", 1), ("reports", 1), ("frontend", 2),
    ]


def test_leaf_consumer_has_empty_blast_radius(shop):
    assert blast_radius([shop["frontend"]]) == []


def test_cycles_terminate(shop):
    shop["database"].depends_on.add(shop["frontend"])  # a (bad) cycle in the catalog
    result = names(blast_radius([shop["payment"]]))
    assert ("checkout", 1) in result and ("database", 3) in result
    assert len(result) == len({slug for slug, _ in result})


def test_incident_blast_radius_excludes_the_affected_services(shop):
    incident = services.create_incident(
        title="Catalog slow", severity=Severity.MEDIUM, primary_service=shop["catalog"], affected_services=[shop["search"]]
    )
    assert names(incident_blast_radius(incident)) == [("frontend", 1)]


def test_graph_walk_refuses_an_unknown_direction():
    from incidents.selectors import dependency_edges

    with pytest.raises(ValueError, match="unknown direction 'upstream'"):
        dependency_edges("upstream")
