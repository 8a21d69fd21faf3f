import pytest

from alzmri.data.classes import CLASS_NAMES, class_index, class_index_or_raise
from alzmri.errors import AlzmriError


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Non_Demented", 0), ("NonDemented", 0), ("Non Demented", 0), ("No Impairment", 0),
        ("Very_Mild_Demented", 1), ("VeryMildDemented", 1), ("Very mild Dementia", 1),
        ("Mild_Demented", 2), ("MildDemented", 2), ("Mild Dementia", 2),
        ("Moderate_Demented", 3), ("ModerateDemented", 3), ("Moderate Dementia", 3),
    ],
)
def test_known_spellings_map_to_ordinal_labels(name, expected):
    assert class_index(name) == expected


def test_canonical_order_is_ordinal_severity():
    assert CLASS_NAMES == ("NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented")


def test_unknown_name_is_none_and_raises_with_location():
    assert class_index("Severe_Demented") is None
    with pytest.raises(AlzmriError, match="somewhere.*unknown class name 'Severe_Demented'"):
        class_index_or_raise("Severe_Demented", "somewhere")
