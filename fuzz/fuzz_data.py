"""Fuzz the data files `fastformer train --data` reads: arbitrary bytes as a
`source<TAB>target` file, through read_pairs, the vocabulary, bucketing and
a batch. Only ValueError (DataFileError, naming the file) may come out."""
import os
import tempfile

from _harness import run


def setup():
    import fastformer.data.textfile as textfile

    return textfile, os.path.join(tempfile.mkdtemp(prefix="ff-fuzz-data-"), "pairs.tsv")


def test_one_input(data, state):
    import atheris

    textfile, path = state
    fdp = atheris.FuzzedDataProvider(data)
    batch_size = fdp.ConsumeIntInRange(1, 8)
    heldout = fdp.PickValueInList([0.0, 0.05, 0.5])
    with open(path, "wb") as f:
        f.write(fdp.ConsumeBytes(fdp.remaining_bytes()))
    try:
        data = textfile.TextPairsData.from_file(path, batch_size=batch_size, heldout_fraction=heldout)
    except ValueError as exc:
        if path not in str(exc):
            raise AssertionError(f"a data error that does not name the file: {exc}") from None
        raise
    batch = data.get_batch(0)
    assert batch.src.shape[0] >= 1
    data.heldout_batches()


if __name__ == "__main__":
    run(test_one_input, setup, expected=(ValueError,))
