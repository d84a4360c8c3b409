"""How long the two shapes of a shard transfer take on a MongoDB-compatible server: 525 of 1024
shard documents moved from one owner to another and read back, as one `update_many` with
`_id: {$in: [...]}` plus a find by `$in`, and as one unordered `update` command
with a statement per shard plus a read of the whole table (the shape `MongoStore::transfer`
sends). Interleaved, 5 rounds each, in a database of its own that is dropped at the end.

    .venv-mongo/bin/python scripts/transfer-shapes.py [mongodb://127.0.0.1:27017]
"""
import sys
import time, statistics, pymongo
from pymongo import UpdateOne
c = pymongo.MongoClient(sys.argv[1] if len(sys.argv) > 1 else "mongodb://127.0.0.1:27017")
col = c["transfer_shapes"]["shards"]
ids = [i for i in range(1024) if i % 2 == 1][:512] + list(range(0, 26, 2))[:13]
def reset():
    col.drop()
    col.insert_many([{"_id": i, "owner_ordinal": 1 if i in ids else 0, "owner_generation": 1, "epoch": 1} for i in range(1024)])
u = {"$set": {"owner_ordinal": 0, "owner_generation": 2}, "$inc": {"epoch": 1}}
def old():
    col.update_many({"_id": {"$in": ids}, "owner_ordinal": 1, "owner_generation": 1}, u)
    return len(list(col.find({"_id": {"$in": ids}}).sort("_id", 1)))
def new():
    col.bulk_write([UpdateOne({"_id": i, "owner_ordinal": 1, "owner_generation": 1}, u) for i in ids], ordered=False)
    s = set(ids)
    return len([d for d in col.find({}).sort("_id", 1) if d["_id"] in s])
res = {"update_many $in + find $in": [], "update statements + find all": []}
for r in range(5):
    for name, f in (("update_many $in + find $in", old), ("update statements + find all", new)):
        reset(); t = time.perf_counter(); n = f(); res[name].append((time.perf_counter() - t) * 1000); assert n == 525
for name, v in res.items():
    print(f"{name}: median {statistics.median(v):.0f} ms, range {min(v):.0f}-{max(v):.0f} ms")
c.drop_database("transfer_shapes")
