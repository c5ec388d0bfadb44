#!/usr/bin/env python3
"""A local stand-in for Google's OAuth token endpoint, the metadata server, the Cloud Storage
JSON API and the Drive v3 API, for tests and examples. It checks what the real services check:

  * POST /token takes a JWT-bearer grant: the RS256 signature is verified with the public key of
    the service-account key file given with --key-file, and the claims too (iss, aud = this
    token_uri, scope, iat/exp at most an hour apart and current). It answers an access token.
  * GET /computeMetadata/v1/instance/service-accounts/default/token needs Metadata-Flavor: Google.
  * Every API call needs a current bearer token with the right scope (401 / 403 as Google answers).
  * Cloud Storage: objects list (prefix, maxResults, pageToken), get (metadata, or alt=media with
    Range and ifGenerationMatch), media and resumable uploads (Content-Range, 308 + Range, chunks
    in multiples of 256 KiB), rewriteTo, delete. Generations change on every write.
  * Drive v3: files.list with the q language (`'ID' in parents`, `trashed = false`, `createdTime >
    '...'`, `modifiedTime > '...'`, `name = '...'`, `mimeType = / != '...'`, joined by `and`),
    pageSize/pageToken/orderBy/fields, shared drives (supportsAllDrives, includeItemsFromAllDrives,
    corpora=drive + driveId); files.get (alt=media with Range; Google documents are not
    downloadable); files.export of a Sheet as text/csv.
  * Faults on request: POST /_admin/storm {"count", "status", "retry_after"} answers the next
    `count` API calls 429 (or 403 userRateLimitExceeded) with Retry-After; --expire-after N
    makes every token issued so far invalid after N API calls (once).

  google_fake.py --port 8093 --key-file sa.json [--max-page 80] [--token-ttl 3600] [--expire-after N]
  google_fake.py --port 8093 --make-key sa.json        # writes a fresh key for clients to use

Test set-up (not Google's API): POST /_admin/gcs/{bucket} [{"name", "content"}] puts objects,
POST /_admin/drive/files [{"name", "content", "parents", "mimeType", "createdTime"}] adds Drive
files, POST /_admin/drive/files/{id} {"content"} edits one.

GET /_admin/stats: token exchanges, calls, throttled answers, retries sent before their
Retry-After ran out, list pages served, the most calls started in any one second.
"""
import argparse, base64, hashlib, json, secrets, threading, time, uuid
from datetime import datetime, timezone
from urllib.parse import unquote, parse_qs, quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from fastapi import FastAPI, Request
from fastapi.responses import Response
import uvicorn

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--key-file", help="the service-account key whose JWTs the token endpoint accepts")
ap.add_argument("--make-key", help="write a fresh service-account key here (token_uri: this server) and accept it")
ap.add_argument("--max-page", type=int, default=1000)
ap.add_argument("--token-ttl", type=int, default=3600)
ap.add_argument("--expire-after", type=int, default=0)
ap.add_argument("--buckets", default="")
args = ap.parse_args()

if args.make_key:
    from cryptography.hazmat.primitives.asymmetric import rsa
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with open(args.make_key, "w") as f:
        json.dump({"type": "service_account", "project_id": "sluice-example", "private_key_id": secrets.token_hex(8), "private_key": pem,
                   "client_email": "sluice@sluice-example.iam.gserviceaccount.com", "token_uri": f"http://127.0.0.1:{args.port}/token"}, f)
    args.key_file = args.make_key
if not args.key_file:
    ap.error("give --key-file or --make-key")
KEY = json.load(open(args.key_file))
PUBLIC = serialization.load_pem_private_key(KEY["private_key"].encode(), password=None).public_key()
TOKEN_URI = f"http://127.0.0.1:{args.port}/token"
STORAGE_SCOPES = {"https://www.googleapis.com/auth/devstorage.read_write", "https://www.googleapis.com/auth/devstorage.full_control",
                  "https://www.googleapis.com/auth/cloud-platform"}
DRIVE_SCOPES = {"https://www.googleapis.com/auth/drive", "https://www.googleapis.com/auth/drive.readonly"}
SHEET = "application/vnd.google-apps.spreadsheet"

lock = threading.Lock()
tokens = {}  # token -> (expires, scopes)
buckets = {b: {} for b in args.buckets.split(",") if b}  # bucket -> name -> object
sessions = {}  # upload_id -> {bucket, name, data, total, content_type}
files = {}  # id -> drive file
storm = {"count": 0, "status": 429, "retry_after": "1"}
throttled_at = {}  # request key -> when its 429 was answered, and the wait it asked for
stats = {"token_exchanges": 0, "calls": 0, "throttled": 0, "early_retries": 0, "list_pages": 0, "unauthorized": 0}
starts = []
generation = [1_700_000_000_000_000]

app = FastAPI()


def now_rfc3339(t=None):
    t = time.time() if t is None else t
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"


def parse_time(s):
    """RFC 3339; a time without a zone is UTC (as Drive's query language takes it)."""
    d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()


def j(status, body, headers=None):
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers or {})


def gerror(status, reason, message, extra=None):
    e = {"error": {"code": status, "message": message, "errors": [{"message": message, "domain": "global", "reason": reason}]}}
    if extra:
        e["error"].update(extra)
    return j(status, e)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@app.get("/healthz")
def healthz():
    return {"ok": True}


@app.get("/_admin/stats")
def admin_stats():
    with lock:
        best, jx = 0, 0
        for i, t in enumerate(starts):
            while starts[jx] <= t - 1.0:
                jx += 1
            best = max(best, i - jx + 1)
        return dict(stats, max_per_second=best, live_tokens=len(tokens))


@app.post("/_admin/storm")
async def admin_storm(request: Request):
    b = await request.json()
    with lock:
        storm.update(count=int(b.get("count", 10)), status=int(b.get("status", 429)), retry_after=str(b.get("retry_after", "1")))
    return {"ok": True}


@app.post("/_admin/reset_rate")
def admin_reset_rate():
    with lock:
        starts.clear()
    return {"ok": True}


@app.get("/_admin/drive/ids")
def admin_drive_ids(name: str):
    with lock:
        return {"id": next((f["id"] for f in files.values() if f["name"] == name), None)}


@app.post("/_admin/expire")
def admin_expire():
    with lock:
        for t in tokens:
            tokens[t] = (0, tokens[t][1])
    return {"ok": True}


@app.post("/_admin/buckets/{name}")
def admin_bucket(name: str):
    with lock:
        buckets.setdefault(name, {})
    return {"ok": True}


@app.post("/_admin/gcs/{bucket}")
async def admin_gcs_put(bucket: str, request: Request):
    """Creates the bucket if needed and puts [{"name", "content"}] objects in it."""
    b = await request.json()
    with lock:
        buckets.setdefault(bucket, {})
    for item in b:
        put_object(bucket, item["name"], base64.b64decode(item["content_b64"]) if "content_b64" in item else item.get("content", "").encode(), item.get("contentType", "text/csv"))
    return {"ok": True}


@app.get("/_admin/gcs/{bucket}")
def admin_gcs_list(bucket: str, content: bool = False):
    with lock:
        return {n: dict({"size": len(o["data"]), "md5": hashlib.md5(o["data"]).hexdigest(), "generation": str(o["generation"])},
                        **({"content_b64": base64.b64encode(o["data"]).decode()} if content else {}))
                for n, o in sorted(buckets.get(bucket, {}).items())}


def new_file(b):
    data = base64.b64decode(b["content_b64"]) if "content_b64" in b else b.get("content", "").encode()
    t = time.time()
    f = {"id": b.get("id") or uuid.uuid4().hex[:28], "name": b["name"], "mimeType": b.get("mimeType", "text/csv"),
         "parents": b.get("parents", []), "createdTime": b.get("createdTime") or now_rfc3339(t),
         "modifiedTime": b.get("modifiedTime") or b.get("createdTime") or now_rfc3339(t), "trashed": False, "data": data}
    if b.get("driveId"):
        f["driveId"] = b["driveId"]
    return f


@app.post("/_admin/drive/files")
async def admin_drive_create(request: Request):
    b = await request.json()
    items = b if isinstance(b, list) else [b]
    out = []
    with lock:
        for item in items:
            f = new_file(item)
            files[f["id"]] = f
            out.append(f["id"])
    return {"ids": out}


@app.post("/_admin/drive/files/{fid}")
async def admin_drive_update(fid: str, request: Request):
    b = await request.json()
    with lock:
        f = files[fid]
        if "content" in b:
            f["data"] = b["content"].encode()
        if b.get("trashed") is not None:
            f["trashed"] = bool(b["trashed"])
        f["modifiedTime"] = b.get("modifiedTime") or now_rfc3339()
    return {"ok": True}


@app.post("/token")
async def token(request: Request):
    form = parse_qs((await request.body()).decode())
    with lock:
        stats["token_exchanges"] += 1
    if form.get("grant_type", [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return j(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
    try:
        h64, c64, s64 = form["assertion"][0].split(".")
        header, claims = json.loads(b64url_decode(h64)), json.loads(b64url_decode(c64))
    except Exception:
        return j(400, {"error": "invalid_grant", "error_description": "Invalid JWT: not three base64url parts"})
    if header.get("alg") != "RS256":
        return j(400, {"error": "invalid_grant", "error_description": "Invalid JWT: alg must be RS256"})
    if KEY.get("private_key_id") and header.get("kid") not in (None, KEY["private_key_id"]):
        return j(400, {"error": "invalid_grant", "error_description": "Invalid JWT: unknown kid"})
    try:
        PUBLIC.verify(b64url_decode(s64), f"{h64}.{c64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return j(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    now = time.time()
    if claims.get("iss") != KEY["client_email"]:
        return j(400, {"error": "invalid_grant", "error_description": "Invalid issuer"})
    if claims.get("aud") != TOKEN_URI:
        return j(400, {"error": "invalid_grant", "error_description": "Invalid JWT: aud must be the token URI"})
    iat, exp = claims.get("iat", 0), claims.get("exp", 0)
    if not (iat - 300 <= now <= exp + 300) or exp - iat > 3600:
        return j(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."})
    scopes = set(str(claims.get("scope", "")).split())
    if not scopes:
        return j(400, {"error": "invalid_scope", "error_description": "Empty or missing scope not allowed."})
    t = "ya29." + secrets.token_urlsafe(24)
    with lock:
        tokens[t] = (now + args.token_ttl, scopes)
    return {"access_token": t, "expires_in": args.token_ttl, "token_type": "Bearer"}


@app.get("/computeMetadata/v1/instance/service-accounts/default/token")
def metadata_token(request: Request):
    if request.headers.get("metadata-flavor") != "Google":
        return Response("Missing Metadata-Flavor:Google header.", status_code=403)
    t = "ya29.m-" + secrets.token_urlsafe(24)
    with lock:
        stats["token_exchanges"] += 1
        tokens[t] = (time.time() + args.token_ttl, STORAGE_SCOPES | DRIVE_SCOPES)
    return {"access_token": t, "expires_in": args.token_ttl, "token_type": "Bearer"}


def authorize(request, scopes):
    """None when the call may go on, else Google's answer."""
    auth = request.headers.get("authorization", "")
    with lock:
        stats["calls"] += 1
        starts.append(time.time())
        if args.expire_after and stats["calls"] == args.expire_after:
            for t in tokens:
                tokens[t] = (0, tokens[t][1])
        # A retry sent before the Retry-After it was given ran out.
        key = (request.method, request.url.path, request.url.query)
        if key in throttled_at:
            at, wait = throttled_at.pop(key)
            if time.time() < at + wait - 0.05:
                stats["early_retries"] += 1
        if storm["count"] > 0:
            storm["count"] -= 1
            stats["throttled"] += 1
            throttled_at[key] = (time.time(), float(storm["retry_after"]))
            if storm["status"] == 403:
                r = gerror(403, "userRateLimitExceeded", "User rate limit exceeded.")
            else:
                r = gerror(429, "rateLimitExceeded", "The rate of requests exceeds the rate limit. Please reduce your request rate.")
            r.headers["Retry-After"] = storm["retry_after"]
            return r
        entry = tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
    if entry is None or entry[0] < time.time():
        with lock:
            stats["unauthorized"] += 1
        return gerror(401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                      {"status": "UNAUTHENTICATED"})
    if not (entry[1] & scopes):
        return gerror(403, "insufficientPermissions", "Request had insufficient authentication scopes.", {"status": "PERMISSION_DENIED"})
    return None


def ranged(request, data, headers):
    rng = request.headers.get("range")
    if not rng:
        return Response(data, status_code=200, headers=dict(headers, **{"Content-Length": str(len(data))}), media_type="application/octet-stream")
    a, _, b = rng.removeprefix("bytes=").partition("-")
    start = int(a) if a else max(0, len(data) - int(b))
    end = min(int(b), len(data) - 1) if a and b else len(data) - 1
    if start >= len(data):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
    return Response(data[start:end + 1], status_code=206, media_type="application/octet-stream",
                    headers=dict(headers, **{"Content-Range": f"bytes {start}-{end}/{len(data)}"}))


# ---------------------------------------------------------------- Cloud Storage

def resource(bucket, o):
    return {"kind": "storage#object", "id": f"{bucket}/{o['name']}/{o['generation']}", "name": o["name"], "bucket": bucket,
            "generation": str(o["generation"]), "metageneration": "1", "contentType": o["contentType"], "size": str(len(o["data"])),
            "md5Hash": base64.b64encode(hashlib.md5(o["data"]).digest()).decode(), "timeCreated": o["updated"], "updated": o["updated"],
            "etag": f"CO{o['generation']}="}


def put_object(bucket, name, data, content_type):
    with lock:
        generation[0] += 1
        o = {"name": name, "data": data, "generation": generation[0], "contentType": content_type, "updated": now_rfc3339()}
        buckets[bucket][name] = o
        return o


def gcs(request, method, parts, q, body):
    # parts: after /storage/v1/b/ ; names stay percent-encoded until split
    bucket = unquote(parts[0])
    if bucket not in buckets:
        return gerror(404, "notFound", "The specified bucket does not exist.")
    objs = buckets[bucket]
    if len(parts) == 2 and parts[1] == "o" and method == "GET":
        prefix = q.get("prefix", [""])[0]
        size = min(int(q.get("maxResults", ["1000"])[0]), args.max_page, 1000)
        after = base64.urlsafe_b64decode(q["pageToken"][0]).decode() if "pageToken" in q else None
        with lock:
            names = sorted(n for n in objs if n.startswith(prefix) and (after is None or n > after))
            stats["list_pages"] += 1
            page = [resource(bucket, objs[n]) for n in names[:size]]
        out = {"kind": "storage#objects", "items": page}
        if len(names) > size:
            out["nextPageToken"] = base64.urlsafe_b64encode(page[-1]["name"].encode()).decode()
        return j(200, out)
    if len(parts) >= 3 and parts[1] == "o":
        name = unquote(parts[2])
        o = objs.get(name)
        if len(parts) == 8 and parts[3] == "rewriteTo" and parts[6] == "o" and method == "POST":
            if o is None:
                return gerror(404, "notFound", "No such object: " + f"{bucket}/{name}")
            if "ifSourceGenerationMatch" in q and q["ifSourceGenerationMatch"][0] != str(o["generation"]):
                return gerror(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
            dest_bucket = unquote(parts[5])
            if dest_bucket not in buckets:
                return gerror(404, "notFound", "The destination bucket does not exist.")
            c = put_object(dest_bucket, unquote(parts[7]), o["data"], o["contentType"])
            n = len(o["data"])
            return j(200, {"kind": "storage#rewriteResponse", "totalBytesRewritten": str(n), "objectSize": str(n), "done": True,
                           "resource": resource(dest_bucket, c)})
        if len(parts) != 3:
            return gerror(404, "notFound", "Not Found")
        if method == "DELETE":
            if o is None:
                return gerror(404, "notFound", "No such object: " + f"{bucket}/{name}")
            with lock:
                del objs[name]
            return Response(status_code=204)
        if method == "GET":
            if o is None or ("generation" in q and q["generation"][0] != str(o["generation"])):
                return gerror(404, "notFound", "No such object: " + f"{bucket}/{name}")
            if "ifGenerationMatch" in q and q["ifGenerationMatch"][0] != str(o["generation"]):
                return gerror(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
            if q.get("alt", [""])[0] == "media":
                return ranged(request, o["data"], {"x-goog-generation": str(o["generation"]), "x-goog-stored-content-length": str(len(o["data"])),
                                                   "Last-Modified": datetime.fromisoformat(o["updated"].replace("Z", "+00:00")).strftime("%a, %d %b %Y %H:%M:%S GMT"),
                                                   "ETag": f'"{hashlib.md5(o["data"]).hexdigest()}"'})
            return j(200, resource(bucket, o))
    return gerror(404, "notFound", "Not Found")


def gcs_upload(request, method, parts, q, body):
    bucket = unquote(parts[0])
    if bucket not in buckets:
        return gerror(404, "notFound", "The specified bucket does not exist.")
    kind = q.get("uploadType", [""])[0]
    if "upload_id" in q:
        s = sessions.get(q["upload_id"][0])
        if s is None:
            return gerror(404, "notFound", "No such upload session.")
        cr = request.headers.get("content-range", "")
        if not cr.startswith("bytes "):
            return gerror(400, "invalid", "Content-Range is required.")
        span, _, total = cr[6:].partition("/")
        if total != "*":
            s["total"] = int(total)
        if span != "*":
            a, _, b = span.partition("-")
            a, b = int(a), int(b)
            if b - a + 1 != len(body) or a > len(s["data"]):
                return gerror(400, "invalid", "Content-Range does not match the body or skips bytes.")
            if total == "*" and len(body) % 262144:
                return gerror(400, "invalid", "Chunks other than the last must be a multiple of 256 KiB.")
            s["data"] += body[len(s["data"]) - a:]
        if s["total"] is not None and len(s["data"]) == s["total"]:
            o = put_object(s["bucket"], s["name"], bytes(s["data"]), s["content_type"])
            del sessions[q["upload_id"][0]]
            return j(200, resource(s["bucket"], o))
        headers = {"Range": f"bytes=0-{len(s['data']) - 1}"} if s["data"] else {}
        return Response(status_code=308, headers=headers)
    name = q.get("name", [None])[0]
    if not name:
        return gerror(400, "required", "Required parameter: name")
    if "ifGenerationMatch" in q:
        cur = buckets[bucket].get(name)
        if str(cur["generation"] if cur else 0) != q["ifGenerationMatch"][0]:
            return gerror(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")
    if kind == "media" and method == "POST":
        o = put_object(bucket, name, body, request.headers.get("content-type", "application/octet-stream"))
        return j(200, resource(bucket, o))
    if kind == "resumable" and method == "POST":
        uid = secrets.token_urlsafe(16)
        sessions[uid] = {"bucket": bucket, "name": name, "data": bytearray(), "total": None,
                         "content_type": request.headers.get("x-upload-content-type", "application/octet-stream")}
        loc = f"http://127.0.0.1:{args.port}/upload/storage/v1/b/{quote(bucket, safe='')}/o?uploadType=resumable&name={quote(name, safe='')}&upload_id={uid}"
        return Response(status_code=200, headers={"Location": loc, "Content-Length": "0"})
    return gerror(400, "invalid", f"uploadType {kind} is not supported here")


# ---------------------------------------------------------------- Drive v3

def q_matches(q, f):
    """Evaluates the subset of Drive's query language Sluice uses; raises on anything else."""
    for clause in split_and(q):
        c = clause.strip()
        if c.endswith(" in parents"):
            if literal(c[:-len(" in parents")].strip()) not in f["parents"]:
                return False
            continue
        field, op, value = c.split(" ", 2)
        if field == "trashed" and op in ("=", "!="):
            want = value.strip() == "true"
            if (f["trashed"] == want) != (op == "="):
                return False
        elif field in ("createdTime", "modifiedTime") and op in (">", ">=", "<", "<=", "="):
            a, b = parse_time(f[field]), parse_time(literal(value))
            if not {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b, "=": a == b}[op]:
                return False
        elif field in ("name", "mimeType") and op in ("=", "!="):
            if (f[field] == literal(value)) != (op == "="):
                return False
        elif field == "name" and op == "contains":
            if literal(value) not in f["name"]:
                return False
        else:
            raise ValueError(c)
    return True


def split_and(q):
    out, cur, quoted, i = [], "", False, 0
    while i < len(q):
        ch = q[i]
        if ch == "\\" and quoted:
            cur += q[i:i + 2]
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        if not quoted and q[i:i + 5] == " and ":
            out.append(cur)
            cur = ""
            i += 5
            continue
        cur += ch
        i += 1
    out.append(cur)
    return out


def literal(s):
    s = s.strip()
    if len(s) < 2 or s[0] != "'" or s[-1] != "'":
        raise ValueError(s)
    return s[1:-1].replace("\\'", "'").replace("\\\\", "\\")


def drive_view(f, fields):
    full = {"kind": "drive#file", "id": f["id"], "name": f["name"], "mimeType": f["mimeType"], "parents": f["parents"],
            "createdTime": f["createdTime"], "modifiedTime": f["modifiedTime"], "trashed": f["trashed"]}
    if not f["mimeType"].startswith("application/vnd.google-apps."):
        full["size"] = str(len(f["data"]))
        full["md5Checksum"] = hashlib.md5(f["data"]).hexdigest()
    if "driveId" in f:
        full["driveId"] = f["driveId"]
    if fields is None:
        return {k: full[k] for k in ("kind", "id", "name", "mimeType") if k in full}
    return {k: v for k, v in full.items() if k in fields}


def visible(f, q, all_drives):
    return "driveId" not in f or all_drives


def drive(request, method, parts, q):
    all_drives = q.get("supportsAllDrives", ["false"])[0] == "true"
    if parts == ["files"] and method == "GET":
        include = q.get("includeItemsFromAllDrives", ["false"])[0] == "true"
        if include and not all_drives:
            return gerror(403, "teamDrivesSupportRequired", "The includeItemsFromAllDrives parameter can only be set to true if supportsAllDrives is also set to true.")
        corpora = q.get("corpora", ["user"])[0]
        drive_id = q.get("driveId", [None])[0]
        if corpora == "drive" and not drive_id:
            return gerror(400, "invalid", "The driveId parameter must be specified if and only if corpora is set to drive.")
        fields = q.get("fields", [None])[0]
        want = None
        if fields and "files(" in fields:
            want = set(fields[fields.index("files(") + 6:fields.index(")", fields.index("files("))].split(","))
        size = min(int(q.get("pageSize", ["100"])[0]), args.max_page, 1000)
        offset = int(base64.urlsafe_b64decode(q["pageToken"][0]).decode()) if "pageToken" in q else 0
        try:
            with lock:
                hits = [f for f in files.values() if q_matches(q.get("q", [""])[0] or "trashed = false", f)
                        and (("driveId" not in f) or (include and (corpora != "drive" or f.get("driveId") == drive_id)))
                        and (corpora != "drive" or f.get("driveId") == drive_id)]
        except (ValueError, KeyError):
            return gerror(400, "invalid", "Invalid Value", {"errors": [{"domain": "global", "reason": "invalid", "message": "Invalid Value",
                                                                       "locationType": "parameter", "location": "q"}]})
        order = q.get("orderBy", ["name"])[0].split(",")[0].split()
        hits.sort(key=lambda f: (f[order[0]], f["id"]), reverse=len(order) > 1 and order[1] == "desc")
        page = hits[offset:offset + size]
        with lock:
            stats["list_pages"] += 1
        out = {"kind": "drive#fileList", "incompleteSearch": False, "files": [drive_view(f, want) for f in page]}
        if offset + size < len(hits):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        return j(200, out)
    if len(parts) >= 2 and parts[0] == "files" and method == "GET":
        f = files.get(unquote(parts[1]))
        if f is None or not visible(f, q, all_drives):
            return gerror(404, "notFound", f"File not found: {unquote(parts[1])}.", {"errors": [{"domain": "global", "reason": "notFound",
                                                                                           "message": "File not found", "locationType": "parameter", "location": "fileId"}]})
        if len(parts) == 3 and parts[2] == "export":
            mime = q.get("mimeType", [""])[0]
            if f["mimeType"] != SHEET:
                return gerror(403, "fileNotExportable", "Export only supports Docs Editors files.")
            if mime != "text/csv":
                return gerror(400, "badRequest", "The requested conversion is not supported.")
            return Response(f["data"], status_code=200, media_type="text/csv")
        if len(parts) == 2:
            if q.get("alt", [""])[0] == "media":
                if f["mimeType"].startswith("application/vnd.google-apps."):
                    return gerror(403, "fileNotDownloadable", "Only files with binary content can be downloaded. Use Export with Docs Editors files.")
                return ranged(request, f["data"], {})
            fields = q.get("fields", [None])[0]
            return j(200, drive_view(f, set(fields.split(",")) if fields else None))
    return gerror(404, "notFound", "Not Found")


@app.api_route("/{full:path}", methods=["GET", "POST", "PUT", "DELETE"])
async def api(request: Request, full: str):
    raw = request.scope.get("raw_path", b"").decode().split("?")[0]
    q = parse_qs(request.url.query, keep_blank_values=True)
    body = await request.body()
    if raw.startswith("/storage/v1/b/"):
        denied = authorize(request, STORAGE_SCOPES)
        return denied or gcs(request, request.method, raw[len("/storage/v1/b/"):].split("/"), q, body)
    if raw.startswith("/upload/storage/v1/b/"):
        denied = authorize(request, STORAGE_SCOPES)
        return denied or gcs_upload(request, request.method, raw[len("/upload/storage/v1/b/"):].split("/"), q, body)
    if raw.startswith("/drive/v3/"):
        denied = authorize(request, DRIVE_SCOPES)
        return denied or drive(request, request.method, raw[len("/drive/v3/"):].split("/"), q)
    return gerror(404, "notFound", "Not Found")


uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
