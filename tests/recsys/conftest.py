import pytest
import torch

from prunekit.recsys.data import Interactions, leave_one_out


def make_log(n_users: int = 30, n_items: int = 40, n: int = 600, seed: int = 0) -> Interactions:
    g = torch.Generator().manual_seed(seed)
    # skewed item popularity so frequency differs between ids
    items = torch.multinomial(torch.arange(n_items, 0, -1).float() ** 2, n, replacement=True,
                              generator=g)
    users = torch.cat([torch.arange(n_users), torch.randint(0, n_users, (n - n_users,),
                                                            generator=g)])
    return Interactions(users, items, torch.randint(1, 6, (n,), generator=g).float(),
                        torch.randperm(n, generator=g), n_users, n_items)


@pytest.fixture
def log() -> Interactions:
    return make_log()


@pytest.fixture
def split(log):
    return leave_one_out(log)


@pytest.fixture
def csv_file(tmp_path, log):
    path = tmp_path / "ratings.csv"
    lines = ["User,Item,Rating,Timestamp"] + [
        f"{u + 1},{i + 1},{r:.1f},{t}" for u, i, r, t in
        zip(log.users.tolist(), log.items.tolist(), log.ratings.tolist(), log.times.tolist(), strict=False)]
    path.write_text("\n".join(lines) + "\n")
    return path
