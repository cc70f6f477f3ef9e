"""How the storage library was chosen: pyarrow.fs, fsspec (s3fs) and obstore side by side.

Against ``moto_server`` (its own process) on loopback: streaming a parquet object, writing a
state-sized object, and small puts, gets, conditional creates and listings; time (best of a
few) and requests (moto's log). Needs ``obstore`` besides the test extra; not part of
``python -m benchmarks``. Run ``python -m benchmarks.bench_store_libraries [ROWS]``. The figures
in the README's "Object storage" section come from it.
"""

# ruff: noqa
import io
import os
import socket
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bench_sync import customer_table

TMP = tempfile.mkdtemp(prefix="flameup-bench-libs-")

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
log = open(f"{TMP}/moto.log", "w")
srv = subprocess.Popen(
    [sys.executable.replace("python", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
    stderr=log,
    stdout=log,
)
url = f"http://127.0.0.1:{port}"
os.environ.update(
    AWS_ACCESS_KEY_ID="k",
    AWS_SECRET_ACCESS_KEY="s",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_ENDPOINT_URL=url,
    AWS_ALLOW_HTTP="true",
)
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port)).close()
        break
    except OSError:
        time.sleep(0.1)


def requests():
    log.flush()
    return sum(1 for l in open(f"{TMP}/moto.log") if "HTTP/1.1" in l)


import boto3

boto3.client("s3").create_bucket(Bucket="bench")
local = f"{TMP}/cust{N}.parquet"
if not os.path.exists(local):
    pq.write_table(customer_table(N), local, row_group_size=100_000)
size = os.path.getsize(local)
boto3.client("s3").upload_file(local, "bench", "cust.parquet")
print(f"{N:,} rows, {size / 1e6:.1f} MB")

import pyarrow.fs as pafs, s3fs, obstore
from obstore.store import S3Store
from obstore.fsspec import FsspecStore

pfs = pafs.S3FileSystem(endpoint_override=url, scheme="http", region="us-east-1")
sfs = s3fs.S3FileSystem(endpoint_url=url)
ost = S3Store("bench", endpoint=url, allow_http=True, region="us-east-1")


def stream(handle):
    n = 0
    for b in pq.ParquetFile(handle, pre_buffer=False).iter_batches(batch_size=50_000):
        n += b.num_rows
    assert n == N, n


def timed(name, fn, reps=3):
    best = 1e9
    r0 = requests()
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    print(f"  {name:<44} {best * 1000:8.1f} ms   {(requests() - r0) / reps:6.1f} requests")


print("stream-read the parquet object (ParquetFile.iter_batches, pre_buffer off):")
timed("local file", lambda: stream(local))


def pa_read():
    with pfs.open_input_file("bench/cust.parquet") as f:
        stream(f)


timed("pyarrow.fs S3FileSystem", pa_read)


def s3fs_read():
    with sfs.open("bench/cust.parquet", "rb") as f:
        stream(f)


timed("s3fs (fsspec) open()", s3fs_read)


def s3fs_pa():
    h = pafs.PyFileSystem(pafs.FSSpecHandler(sfs))
    with h.open_input_file("bench/cust.parquet") as f:
        stream(f)


timed("s3fs via pyarrow PyFileSystem(FSSpecHandler)", s3fs_pa)


def pa_rg():
    with pfs.open_input_file("bench/cust.parquet") as f:
        pf = pq.ParquetFile(f, pre_buffer=True)
        n = 0
        for rg in range(pf.num_row_groups):
            for b in pf.iter_batches(batch_size=50_000, row_groups=[rg]):
                n += b.num_rows
        assert n == N


timed("pyarrow.fs, pre_buffer per row group", pa_rg)


class Adapt(io.RawIOBase):
    def __init__(self, r):
        self.r = r

    def readable(self):
        return True

    def seekable(self):
        return True

    def read(self, n=-1):
        return bytes(self.r.read(n) if n >= 0 else self.r.read())

    def readinto(self, b):
        d = self.read(len(b))
        b[: len(d)] = d
        return len(d)

    def seek(self, o, w=0):
        return self.r.seek(o, w)

    def tell(self):
        return self.r.tell()


def ob_reader():
    f = obstore.open_reader(ost, "cust.parquet")
    stream(pa.PythonFile(Adapt(f), mode="r"))


timed("obstore open_reader", ob_reader)

print("write a state-sized parquet object (the file above, streamed):")
table = pq.read_table(local)


def pa_write():
    with pfs.open_output_stream("bench/w1.parquet") as f:
        pq.write_table(table, f, compression="zstd")


timed("pyarrow.fs open_output_stream", pa_write, 2)


def s3fs_write():
    with sfs.open("bench/w2.parquet", "wb") as f:
        pq.write_table(table, f, compression="zstd")


timed("s3fs open(wb)", s3fs_write, 2)


def ob_write():
    w = obstore.open_writer(ost, "w3.parquet")

    class W(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            w.write(bytes(b))
            return len(b)

    pq.write_table(table, pa.PythonFile(W(), mode="w"), compression="zstd")
    w.close()


timed("obstore open_writer", ob_write, 2)

print("small objects, per operation (10 KB body):")
body = os.urandom(10_000)
K = 50


def many(fn):
    def go():
        for i in range(K):
            fn(i)

    return go


def per(name, fn):
    r0 = requests()
    t = time.perf_counter()
    fn()
    e = time.perf_counter() - t
    print(f"  {name:<44} {e / K * 1000:8.2f} ms/op {(requests() - r0) / K:5.1f} req/op")


def pa_put(i):
    with pfs.open_output_stream(f"bench/small/p{i}") as f:
        f.write(body)


per("pyarrow put", many(pa_put))
per("s3fs put (pipe_file)", many(lambda i: sfs.pipe_file(f"bench/small/s{i}", body)))
per("obstore put", many(lambda i: obstore.put(ost, f"small/o{i}", body)))
per("pyarrow get", many(lambda i: pfs.open_input_stream(f"bench/small/p{i}").read()))
per("s3fs get (cat_file)", many(lambda i: sfs.cat_file(f"bench/small/s{i}")))
per("obstore get", many(lambda i: obstore.get(ost, f"small/o{i}").bytes()))
per(
    "s3fs create-if-absent (pipe mode=create)",
    many(lambda i: sfs.pipe_file(f"bench/small/c{i}", body, mode="create")),
)
per(
    "obstore create-if-absent (mode=create)",
    many(lambda i: obstore.put(ost, f"small/d{i}", body, mode="create")),
)
per(
    "pyarrow list prefix (50 keys)",
    many(lambda i: pfs.get_file_info(pafs.FileSelector("bench/small/"))),
)
per(
    "s3fs list prefix (cache off)", many(lambda i: (sfs.invalidate_cache(), sfs.ls("bench/small/")))
)
per("obstore list prefix", many(lambda i: obstore.list(ost, "small/").collect()))
srv.terminate()
