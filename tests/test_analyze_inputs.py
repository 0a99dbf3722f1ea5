"""`spikescope.analyze` takes any batch a DataLoader yields, or says in one line what it expected."""
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import spikescope
from spikescope.errors import SpikescopeError

SAMPLE = spikescope.load_dataset("fashion-mnist-sample", "test", limit=40)
IMAGES, LABELS = SAMPLE[:]  # normalised images and labels


class DictImages(Dataset):
    def __init__(self, keys: tuple[str, str]) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return len(LABELS)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {self.keys[0]: IMAGES[index], self.keys[1]: LABELS[index]}


@pytest.fixture(scope="module")
def model():
    return spikescope.load(spikescope.bundled_checkpoint("baseline"))[0]


@pytest.fixture(scope="module")
def reference(model):
    return spikescope.analyze(model, spikescope.make_loader(SAMPLE, 20))


@pytest.mark.parametrize("loader, labelled", [
    (DataLoader(TensorDataset(IMAGES), batch_size=20), False),  # batches of inputs only, as 1-tuples
    (DataLoader(IMAGES, batch_size=20), False),  # plain tensors
    (DataLoader(TensorDataset(IMAGES, LABELS), batch_size=20), True),  # lists [x, y]
    (DataLoader(DictImages(("image", "label")), batch_size=20), True),
    (DataLoader(DictImages(("input", "target")), batch_size=20), True),
    ([(IMAGES[:20], LABELS[:20]), (IMAGES[20:], LABELS[20:])], True),  # a plain list of tuples
])
def test_every_batch_form_a_dataloader_yields_gives_the_same_numbers(model, reference, loader, labelled):
    result = spikescope.analyze(model, loader)
    assert result.layers["spikes"].tolist() == reference.layers["spikes"].tolist()
    assert (result.info["accuracy"] == reference.info["accuracy"]) if labelled else result.info["accuracy"] is None


@pytest.mark.parametrize("batches, message", [
    ([(IMAGES, LABELS, LABELS)], "got a tuple of 3 items"),
    ([{"pixels": IMAGES}], "got a dict with keys pixels"),
    (["not a tensor"], "got a str"),
    ([(IMAGES, ["a", "b"])], "its labels are a list"),
])
def test_a_batch_of_another_form_is_a_one_line_error_that_says_what_was_expected(model, batches, message):
    with pytest.raises(SpikescopeError, match=message) as caught:
        spikescope.analyze(model, batches)
    assert "a tensor of inputs, a tuple (inputs,) or (inputs, labels), or a dict" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("labels", [LABELS, LABELS[:, None], torch.nn.functional.one_hot(LABELS, 10).float(),
                                    LABELS.float()])
def test_labels_as_indices_columns_or_one_hot_give_the_same_accuracy(model, reference, labels):
    result = spikescope.analyze(model, [(IMAGES[:20], labels[:20]), (IMAGES[20:], labels[20:])])
    assert result.info["accuracy"] == reference.info["accuracy"] <= 1


def test_labels_that_are_not_classes_are_refused_and_outputs_that_are_not_logits_are_named(model):
    with pytest.raises(SpikescopeError, match=r"labels must be class indices \[B\].*shape \(40, 2, 3\)"):
        spikescope.analyze(model, [(IMAGES, torch.zeros(40, 2, 3))])
    with pytest.raises(SpikescopeError, match="labels must be class indices"):
        spikescope.analyze(model, [(IMAGES, LABELS + 0.5)])
    def run_with_odd_output(net, inputs):
        return net(inputs)[None, :, :, None].expand(2, 40, 10, 1)

    with pytest.warns(spikescope.errors.SpikescopeWarning, match=r"output \(\(2, 40, 10, 1\)\) is not \[B, classes\]"):
        result = spikescope.analyze(model, [(IMAGES, LABELS)], run=run_with_odd_output)
    assert result.info["accuracy"] is None
