import pytest

from kdviewer.core.findings import FINDING_KEYS, FINDING_NAMES, check_keys, finding


def test_registry_order_is_chexpert_competition_order():
    assert FINDING_NAMES == ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
    assert FINDING_KEYS == ("atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion")


@pytest.mark.parametrize("query", ["pleural_effusion", "Pleural Effusion", " pleural effusion "])
def test_lookup_by_key_or_name(query):
    assert finding(query).key == "pleural_effusion"


def test_unknown_finding_is_an_error_naming_it():
    with pytest.raises(KeyError, match="pneumothorax"):
        finding("pneumothorax")
    with pytest.raises(KeyError, match="pneumothorax"):
        check_keys(["atelectasis", "pneumothorax"])


def test_keys_must_be_in_registry_order():
    with pytest.raises(ValueError):
        check_keys(tuple(reversed(FINDING_KEYS)))
    assert check_keys(list(FINDING_KEYS)) == FINDING_KEYS
