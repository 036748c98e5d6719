"""The python3 real-program workload of gomalloc's `make bench` (issue 5).

run.py starts this script with PYTHONMALLOC=malloc, so every Python object
(ints, strings, tuples, dicts, lists, class instances) is allocated and freed
through the C allocator under test instead of Python's own pymalloc arenas.
It does what everyday Python code does: build dictionaries and lists of
strings, split and join text, group and sort, round-trip JSON, build and drop
a tree of class instances.  It prints one digest of everything it computed;
run.py checks that the digest is the same under every allocator.

Usage: python3 py_workload.py N      (N scales the amount of work)
"""
import hashlib
import json
import sys


class Node:
    """A binary tree node with a payload, as an interpreter or a parser builds."""

    def __init__(self, key, payload):
        self.key = key
        self.payload = payload
        self.left = None
        self.right = None


def tree_insert(root, node):
    cur = root
    while True:
        if node.key < cur.key:
            if cur.left is None:
                cur.left = node
                return
            cur = cur.left
        else:
            if cur.right is None:
                cur.right = node
                return
            cur = cur.right


def tree_walk(root):
    out, stack, cur = [], [], root
    while stack or cur is not None:
        while cur is not None:
            stack.append(cur)
            cur = cur.left
        cur = stack.pop()
        out.append(cur.key)
        cur = cur.right
    return out


def main(n):
    h = hashlib.sha256()

    # 1. A dictionary of string keys to small mixed records.
    d = {}
    for i in range(n):
        k = "key-%08d-%s" % (i * 7919 % n, "x" * (i % 37))
        d[k] = [i, str(i), (i, i * i), {"v": i % 97}]

    # 2. Build text, split it, compare.
    parts = [("%x" % (i * 2654435761 % 2**32)) * (1 + i % 5) for i in range(n)]
    text = ",".join(parts)
    if text.split(",") != parts:
        raise SystemExit("split/join mismatch")
    h.update(str(len(text)).encode())

    # 3. Group, sort, summarise.
    groups = {}
    for k, v in d.items():
        groups.setdefault(v[3]["v"], []).append(k)
    for g in sorted(groups):
        members = sorted(groups[g])
        h.update(("%d:%d:%s:%s" % (g, len(members), members[0], members[-1])).encode())

    # 4. JSON round trip of a nested document.
    doc = [{"id": i, "tags": [str(j) for j in range(i % 13)], "name": parts[i]} for i in range(0, n, 3)]
    s = json.dumps(doc, sort_keys=True)
    if json.loads(s) != doc:
        raise SystemExit("json round trip mismatch")
    h.update(hashlib.sha256(s.encode()).digest())

    # 5. Drop half the dictionary, rebuild it with new values (churn).
    for i, k in enumerate(list(d)):
        if i % 2 == 0:
            del d[k]
    for i in range(n // 2):
        d["new-%d" % i] = ("v" * (i % 50), i)
    h.update(str(len(d)).encode())
    del doc, s, groups

    # 6. A tree of class instances, walked in order, then dropped.
    keys = [(i * 2654435761 + 12345) % 2**32 for i in range(n)]  # distinct, well spread
    root = Node(keys[0], None)
    for k in keys[1:]:
        tree_insert(root, Node(k, [k] * (k % 4)))
    walked = tree_walk(root)
    if walked != sorted(keys):
        raise SystemExit("tree walk mismatch")
    h.update(str(sum(walked[::97])).encode())
    del root, walked

    print("python_digest=%s n=%d" % (h.hexdigest(), n))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200000)
