public import SluiceCore
public import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization
import Metrics

/// One HTTP exchange with Google, without retries.
enum GoogleHTTP {
    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    /// The object stores' one client (connection pool), with their timeouts and no redirects.
    static var client: HTTPClient { S3ObjectStore.client }

    static func request(_ method: String, _ url: String, headers: [(String, String)], body: [UInt8]?) -> HTTPClientRequest {
        var r = HTTPClientRequest(url: url)
        r.method = HTTPMethod(rawValue: method)
        for (k, v) in headers { r.headers.add(name: k, value: v) }
        if let body { r.body = .bytes(ByteBuffer(bytes: body)) }
        return r
    }

    /// One request; a failure to connect or read is `.unavailable`.
    static func send(_ what: String, method: String, url: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws(SluiceError) -> Answer {
        do {
            let response = try await client.execute(request(method, url, headers: headers, body: body), timeout: .seconds(300))
            var bytes = try await response.body.collect(upTo: 64 << 20)
            return Answer(status: Int(response.status.code), headers: response.headers, body: bytes.readBytes(length: bytes.readableBytes) ?? [])
        } catch {
            throw SluiceError(.unavailable, "\(what): \(error)")
        }
    }

    /// `HTTP 403 rateLimitExceeded: Rate Limit Exceeded` from Google's JSON error document
    /// (`{"error": {"code", "message", "errors": [{"reason"}]}}`), or the OAuth form
    /// (`{"error": "invalid_grant", "error_description"}`).
    static func describe(_ a: Answer) -> String {
        var text = "HTTP \(a.status)"
        guard let o = try? JSONSerialization.jsonObject(with: Data(a.body)) as? [String: Any] else {
            let s = String(decoding: a.body.prefix(200), as: UTF8.self)
            return s.isEmpty ? text : text + ": " + s
        }
        if let e = o["error"] as? [String: Any] {
            if let r = reason(e) { text += " " + r }
            if let m = e["message"] as? String { text += ": " + m }
        } else if let e = o["error"] as? String {
            text += " " + e + ((o["error_description"] as? String).map { ": " + $0 } ?? "")
        }
        return text
    }

    /// The first `errors[].reason` of a JSON error document's `error` (else its `status`).
    static func reason(_ error: [String: Any]) -> String? {
        ((error["errors"] as? [[String: Any]])?.first?["reason"] as? String) ?? (error["status"] as? String)
    }

    /// Whether Google asks us to slow down or try later: 429, 408, 5xx, and the 403s whose
    /// reason is a rate limit (Drive answers those instead of 429).
    static func isTransient(_ a: Answer) -> Bool {
        if a.status == 429 || a.status == 408 || a.status >= 500 { return true }
        guard a.status == 403, let o = try? JSONSerialization.jsonObject(with: Data(a.body)) as? [String: Any],
              let e = o["error"] as? [String: Any] else { return false }
        return ["rateLimitExceeded", "userRateLimitExceeded"].contains(reason(e) ?? "")
    }
}

/// Spaces requests to Google so several workers stay under one quota.
public protocol GoogleRequestGate: Sendable {
    /// Returns when one more request may go.
    func enter() async
}

/// The core's token bucket, for the requests of this process.
actor LocalGoogleGate: GoogleRequestGate {
    var limiter: RateLimiter

    init(rate: Double) { limiter = RateLimiter(rate: rate, burst: max(1, rate / 10), now: Date().timeIntervalSince1970) }

    func enter() async {
        // The token is reserved now; waiting out the debt keeps the order of arrival.
        let wait = limiter.take(now: Date().timeIntervalSince1970)
        if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
    }
}

/// Calls to one Google API: a bearer token from the shared source, the shared rate limit,
/// retries with exponential backoff and jitter on transient answers (honouring
/// `Retry-After`), and a fresh token when the API refuses the one it was given.
public struct GoogleAPI: Sendable {
    public let config: GoogleConfig
    public let tokens: GoogleTokenSource
    /// For messages: `gs://bucket`, `gdrive://folder`.
    let name: String

    public init(config: GoogleConfig, name: String) {
        self.config = config
        tokens = GoogleTokenSource.shared(config.credentials)
        self.name = name
    }

    static let installed = Mutex<(any GoogleRequestGate)?>(nil)
    static let local = Mutex<[Double: LocalGoogleGate]>([:])

    /// Makes every Google request of this process pass `gate` (a server shares one limit
    /// across its workers and replicas through the control plane).
    public static func installGate(_ gate: (any GoogleRequestGate)?) { installed.withLock { $0 = gate } }

    var gate: (any GoogleRequestGate)? {
        if let g = Self.installed.withLock({ $0 }) { return g }
        guard let rate = config.rate else { return nil }
        return Self.local.withLock { all in
            if let g = all[rate] { return g }
            let g = LocalGoogleGate(rate: rate)
            all[rate] = g
            return g
        }
    }

    /// `storage` or `drive`, for metrics.
    var apiLabel: String { name.hasPrefix("gdrive://") ? "drive" : "storage" }

    /// `sluice_google_requests_total{api, outcome}`: answered (not transient), throttled (429 or
    /// a rate-limit 403), unavailable (5xx, 408, no answer), token_refused (a 401 replaced).
    func count(_ outcome: String) {
        Counter(label: "sluice_google_requests_total", dimensions: [("api", apiLabel), ("outcome", outcome)]).increment()
    }

    /// How long to wait before attempt `attempt + 1`.
    func backoff(_ attempt: Int, retryAfter: String?) -> Double {
        if let r = retryAfter.flatMap({ RetryAfter.seconds($0, now: Date()) }) { return min(r, config.maxBackoff) }
        return min(config.maxBackoff, 0.25 * pow(2, Double(attempt - 1))) * Double.random(in: 0.5...1)
    }

    /// Runs `exchange` (given the request's auth headers) until its answer is not transient
    /// or the attempts run out: waits between attempts as `Retry-After` asks (else backoff
    /// with jitter), and replaces a token the API refused once, at once. An `.unavailable`
    /// error from `exchange` (no answer) is retried too; any other error ends it.
    func retrying(_ what: String, _ exchange: (_ auth: [(String, String)]) async throws(SluiceError) -> GoogleHTTP.Answer) async throws(SluiceError) -> GoogleHTTP.Answer {
        var attempt = 0
        var refreshed = false
        while true {
            attempt += 1
            await gate?.enter()
            let token = try await tokens.token()
            var retryAfter: String? = nil
            let failure: SluiceError
            do throws(SluiceError) {
                let a = try await exchange(token.map { [("Authorization", "Bearer " + $0)] } ?? [])
                if a.status == 401 && token != nil && !refreshed {
                    // An expired or revoked token: one fresh token, at once.
                    count("token_refused")
                    await tokens.refused(token)
                    refreshed = true
                    attempt -= 1
                    continue
                }
                guard GoogleHTTP.isTransient(a) else { count("answered"); return a }
                count(a.status == 429 || a.status == 403 ? "throttled" : "unavailable")
                retryAfter = a.headers.first(name: "Retry-After")
                failure = SluiceError(.unavailable, "\(what) on \(name): \(GoogleHTTP.describe(a)) (\(attempt) attempts)")
            } catch where error.code == .unavailable {
                count("unavailable")
                failure = error
            }
            if attempt >= config.attempts { throw failure }
            let wait = backoff(attempt, retryAfter: retryAfter)
            FloatingPointCounter(label: "sluice_google_backoff_seconds_total", dimensions: [("api", apiLabel)]).increment(by: wait)
            try? await Task.sleep(nanoseconds: UInt64(wait * 1e9))
        }
    }

    /// One request, retried (see ``retrying(_:_:)``).
    func call(_ what: String, method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil) async throws(SluiceError) -> GoogleHTTP.Answer {
        try await retrying(what) { auth throws(SluiceError) in
            try await GoogleHTTP.send("\(what) on \(name)", method: method, url: url, headers: headers + auth, body: body)
        }
    }

    /// Streams a GET's body into `out` when it answers 200/206 (a body cut halfway is
    /// fetched again from the start); any other answer is returned with its (small) body
    /// and nothing written. Transient answers are retried first.
    func download(_ what: String, url: String, headers: [(String, String)] = [],
                  into out: FileHandle, onHeaders: (HTTPHeaders) throws(SluiceError) -> Void,
                  chunk: (UnsafeRawBufferPointer) -> Void) async throws(SluiceError) -> GoogleHTTP.Answer {
        try await retrying(what) { auth throws(SluiceError) in
            do {
                let response = try await GoogleHTTP.client.execute(GoogleHTTP.request("GET", url, headers: headers + auth, body: nil), timeout: .seconds(3600))
                let status = Int(response.status.code)
                guard status == 200 || status == 206 else {
                    var bytes = try await response.body.collect(upTo: 1 << 20)
                    return GoogleHTTP.Answer(status: status, headers: response.headers, body: bytes.readBytes(length: bytes.readableBytes) ?? [])
                }
                try onHeaders(response.headers)
                for try await buffer in response.body {
                    try buffer.withUnsafeReadableBytes { p in
                        chunk(p)
                        try out.write(contentsOf: p)
                    }
                }
                try out.synchronize()
                return GoogleHTTP.Answer(status: status, headers: response.headers, body: [])
            } catch let e as SluiceError {
                throw e
            } catch {
                let failure = SluiceError(.unavailable, "\(what) on \(name): \(error)")
                do { try out.truncate(atOffset: 0); try out.seek(toOffset: 0) } catch { throw SluiceError(.io, failure.message) }
                throw failure
            }
        }
    }

    /// The error for an answer that is not what `what` expected.
    func fail(_ what: String, _ a: GoogleHTTP.Answer, object: String) -> SluiceError {
        SluiceError(ObjectInfo.code(forStatus: a.status), "\(what) \(name)/\(object): "
                    + ObjectInfo.explain(a.status, GoogleHTTP.describe(a), access: "check GOOGLE_APPLICATION_CREDENTIALS and that its account may read \(name)"))
    }

    /// RFC 3339 timestamps as Google writes them (`2024-05-01T10:00:00.123Z`).
    static func date(_ s: String?) -> Date {
        guard let s else { return Date(timeIntervalSince1970: 0) }
        var copy = s
        if let p = copy.withUTF8({ Coercion.parseTimestamp(UnsafeRawBufferPointer($0)) }) {
            return Date(timeIntervalSince1970: Double(p.utcMicros) / 1e6)
        }
        return Date(timeIntervalSince1970: 0)
    }

    /// `2024-05-01T10:00:00.123000Z`: the core's timestamp text, to the millisecond (rounded
    /// down, as Google keeps times), with RFC 3339's `T`.
    static func rfc3339(_ d: Date) -> String {
        var out: [UInt8] = []
        ValueText.timestamp(micros: Int64((d.timeIntervalSince1970 * 1000).rounded(.down)) * 1000, utc: true, into: &out)
        out[10] = UInt8(ascii: "T")
        return String(decoding: out, as: UTF8.self)
    }

    /// A query string from the items that have a value (`?a=1&b=2`; empty when none).
    static func query(_ items: [(String, String?)]) -> String {
        let q = items.compactMap { k, v in v.map { "\(k)=\(encode($0))" } }.joined(separator: "&")
        return q.isEmpty ? "" : "?" + q
    }

    /// A JSON answer decoded; one Sluice cannot read is an I/O error naming the call.
    func decode<T: Decodable>(_ type: T.Type, _ a: GoogleHTTP.Answer, _ what: String) throws(SluiceError) -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(a.body)) } catch {
            throw SluiceError(.io, "\(what) on \(name): an answer Sluice cannot read (\(error))")
        }
    }

    /// A path segment or query value, percent-encoded (`/` too).
    static func encode(_ s: String) -> String { SigV4Signer.encode(s, keepSlash: false) }
}
