import pytest

from bot.errors import ConfigurationError
from bot.settings import load_settings
from bot.shards import ShardPlan, check_run_shards, shard_of

POSTGRES = "postgresql+asyncpg://bot@db/bot"
SQLITE = "sqlite+aiosqlite:///data/bot.db"


def test_shard_of_is_discords_formula():
    # 41771983423143937 >> 22 = 9959216934 (worked out by hand: 9959216934 * 2**22 <= id < +2**22).
    assert 9959216934 * 2**22 <= 41771983423143937 < 9959217935 * 2**22
    assert (shard_of(41771983423143937, 2), shard_of(41771983423143937, 16)) == (0, 9959216934 % 16)
    assert [shard_of((n << 22) + 7, 3) for n in range(6)] == [0, 1, 2, 0, 1, 2]
    assert shard_of(2**22 - 1, 5) == 0  # the low 22 bits never matter


def test_a_plan_serves_exactly_the_guilds_of_its_shards():
    plan = ShardPlan((1, 3), 4)
    guilds = [(n << 22) | 99 for n in range(8)]
    assert [g >> 22 for g in guilds if plan.serves(g)] == [1, 3, 5, 7]
    assert plan.client_kwargs() == {"shard_ids": [1, 3], "shard_count": 4}
    assert plan.label() == "1,3/4" and not plan.is_everything


@pytest.mark.parametrize(("url", "ids"), [(SQLITE, None), (SQLITE, "0,1"), (POSTGRES, "1"), (POSTGRES, None)])
def test_run_accepts_sqlite_with_every_shard_and_postgres_with_any(url, ids):
    settings = load_settings(_env_file=None, database_url=url, shard_count=2, shard_ids=ids)
    assert check_run_shards(settings).count == 2


def test_run_refuses_sqlite_with_part_of_the_shards():
    settings = load_settings(_env_file=None, database_url=SQLITE, shard_count=3, shard_ids="0,2")
    with pytest.raises(ConfigurationError) as caught:
        check_run_shards(settings)
    message = str(caught.value)
    assert "SHARD_IDS=0,2" in message and "SHARD_COUNT=3" in message and "shards 1 would need" in message
    assert "PostgreSQL" in message
