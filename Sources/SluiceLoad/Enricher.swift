public import SluiceCore
public import Foundation
import Metrics

/// An HTTP answer, or why there was none.
public enum EnrichAnswer: Sendable {
    case answered(status: Int, body: [UInt8], retryAfter: String?)
    case failed(String)
}

/// What an `enrich` step needs from outside: HTTP GETs, and the cache and rate limit that
/// every worker shares (the control plane).
public protocol EnrichEnvironment: Sendable {
    func get(_ url: String, timeout: Double) async -> EnrichAnswer
    func cached(namespace: String, keys: [String], now: Date) async throws(SluiceError) -> [String: String]
    func cache(namespace: String, entries: [String: String], expiresAt: Date) async throws(SluiceError)
    func takeTokens(bucket: String, rate: Double, burst: Double, count: Int, now: Date?) async throws(SluiceError) -> (granted: Int, wait: Double)
    /// Claims for `holder`, until `until`, each of `keys` that no other holder's claim covers
    /// and no fresh answer in the cache answers at `now`; returns the keys claimed (``EnrichStore/claimLookups(namespace:keys:holder:until:now:)``).
    func claimLookups(namespace: String, keys: [String], holder: String, until: Date, now: Date) async throws(SluiceError) -> Set<String>
    /// Ends `holder`'s claims on `keys`.
    func releaseLookups(namespace: String, keys: [String], holder: String) async throws(SluiceError)
}

/// Tokens of the shared rate limit, taken from the control plane a block at a time (one
/// round trip per block, not per request): about a hundredth of a second of the rate, at
/// most the concurrency, at least one. The bucket holds a block and one more token (so a
/// taker's refill is not lost to the cap). A token not used within `hold` seconds of its
/// grant is dropped, not spent late.
///
/// A bucket of `burst` tokens refilled at `r` per second grants at most `burst + r·L` in
/// any span of `L` seconds, and the requests of a second were granted within `1 + hold`
/// seconds, so refilling at `(rate - burst - 1) / (1 + hold)` keeps every sliding second
/// under `rate` across all workers (a token of slack for the time from a take to its
/// request's arrival), at an average of about that (192/s at `rate: 200`).
public actor TokenReservoir {
    /// The control plane's `takeTokens(bucket:rate:burst:count:now:)`.
    public typealias Take = @Sendable (String, Double, Double, Int, Date?) async throws(SluiceError) -> (granted: Int, wait: Double)
    let takeTokens: Take
    let bucket: String
    let refill: Double
    let block: Int
    var have = 0
    var grantedAt = 0.0
    /// Seconds a granted token may wait for its request.
    public static let hold = 0.02

    public init(bucket: String, rate: Double, concurrency: Int, take: @escaping Take) {
        takeTokens = take
        self.bucket = bucket
        block = Self.block(rate: rate, concurrency: concurrency)
        refill = Self.refill(rate: rate, block: block)
    }

    init(env: any EnrichEnvironment, bucket: String, rate: Double, concurrency: Int) {
        self.init(bucket: bucket, rate: rate, concurrency: concurrency) { b, r, burst, n, now throws(SluiceError) in
            try await env.takeTokens(bucket: b, rate: r, burst: burst, count: n, now: now)
        }
    }

    /// Tokens taken per round trip.
    public static func block(rate: Double, concurrency: Int) -> Int { max(1, min(concurrency, Int(rate / 100))) }

    /// The bucket's refill rate that holds every sliding second to `rate` (see above).
    public static func refill(rate: Double, block: Int) -> Double { max((rate - Double(block) - 2) / (1 + hold), rate / 2) }

    /// Returns once a token is taken.
    public func take() async {
        if have > 0 && MonotonicClock.seconds() - grantedAt > Self.hold { have = 0 }
        while have == 0 {
            let (granted, wait) = (try? await takeTokens(bucket, refill, Double(block + 1), block, nil)) ?? (0, 0.05)
            have += granted
            grantedAt = MonotonicClock.seconds()
            if granted == 0 { try? await Task.sleep(nanoseconds: UInt64(min(max(wait, 0.001), 1) * 1e9)) }
        }
        have -= 1
    }
}

/// Carries out one `enrich` step over a batch of rows: one lookup per distinct key, answers
/// from the shared cache when fresh, the rest fetched with bounded concurrency under the
/// shared rate limit, retried with backoff on 429 (honouring Retry-After), 408, 5xx and
/// connection errors.
public struct Enricher: Sendable {
    public let spec: EnrichSpec
    let env: any EnrichEnvironment

    /// Lookups made over the network (not from the cache), for reports.
    public struct Figures: Sendable, Equatable {
        public var keys = 0
        public var cached = 0
        public var fetched = 0
        public var failed = 0
        public var attempts = 0
    }

    public init(spec: EnrichSpec, env: any EnrichEnvironment) {
        self.spec = spec
        self.env = env
    }

    /// The rows with their new fields; rows whose lookup failed follow `on_error` (rejected
    /// with the reason, or kept with null fields; `fail` throws).
    public func enrich(_ rows: [PipelineRow], figures: inout Figures) async throws(SluiceError) -> (kept: [PipelineRow], rejects: [(Int, String)]) {
        var keyOf: [String?] = []
        var distinct: [String: String] = [:]  // key → URL
        for row in rows {
            guard let url = Self.url(spec.url, row) else { keyOf.append(nil); continue }
            let key = spec.key.map { row[$0]?.text ?? "" }.joined(separator: "\u{1F}")
            keyOf.append(key)
            distinct[key] = url
        }
        figures.keys += distinct.count
        // The cache holds each answer reduced to the picked fields, so it is keyed by them too:
        // picking other fields starts afresh instead of reading answers that lack them.
        let namespace = spec.name + ":" + spec.fields.map(\.value).joined(separator: ",")
        var answers = try await env.cached(namespace: namespace, keys: Array(distinct.keys), now: Date())
        var hits = answers.count
        var failures: [String: String] = [:]
        let tokens = spec.rate.map { TokenReservoir(env: env, bucket: "enrich:" + spec.name, rate: $0, concurrency: spec.concurrency) }
        // A key another process is looking up (a worker on an overlapping batch) is waited
        // for in the cache, not asked twice; one whose claim was released or lapsed (that
        // process failed or died) is claimed and looked up here.
        let holder = UUID().uuidString
        var toClaim = distinct.filter { answers[$0.key] == nil }
        var pause = 0.01
        while !toClaim.isEmpty {
            let got = try await lookUp(toClaim, namespace: namespace, holder: holder, tokens: tokens, figures: &figures)
            answers.merge(got.answers) { $1 }
            failures.merge(got.failed) { $1 }
            guard !got.elsewhere.isEmpty else { break }
            try? await Task.sleep(nanoseconds: UInt64(pause * 1e9))
            pause = min(pause * 1.5, 0.25)
            let arrived = try await env.cached(namespace: namespace, keys: Array(got.elsewhere.keys), now: Date())
            hits += arrived.count
            answers.merge(arrived) { $1 }
            toClaim = got.elsewhere.filter { arrived[$0.key] == nil }
        }
        figures.cached += hits
        if hits > 0 { Counter(label: "sluice_enrich_cache_hits_total", dimensions: [("step", spec.name)]).increment(by: hits) }
        var kept: [PipelineRow] = []
        var rejects: [(Int, String)] = []
        var parsed: [String: [JSONValue]] = [:]
        for (i, var row) in rows.enumerated() {
            var value: [JSONValue]? = nil
            var why: String? = nil
            if let key = keyOf[i] {
                if let cached = parsed[key] {
                    value = cached
                } else if let text = answers[key] {
                    if case .array(let v)? = try? JSONParser.parse(text), v.count == spec.fields.count {
                        parsed[key] = v
                        value = v
                    } else {
                        why = "the cached answer is unreadable"
                    }
                } else {
                    why = failures[key] ?? "no answer"
                }
            } else {
                why = "a field of the URL template is null"
            }
            if value == nil {
                switch spec.onError {
                case .fail: throw SluiceError(.unavailable, "enrich \(spec.name): \(why ?? "no answer")")
                case .reject:
                    rejects.append((i, "enrich \(spec.name): \(why ?? "no answer")"))
                    continue
                case .null: break
                }
            }
            for (k, f) in spec.fields.enumerated() {
                row[f.name] = value.map { PipelineRunner.value($0[k]) } ?? .null
            }
            kept.append(row)
        }
        return (kept, rejects)
    }

    /// The template with each `{field}` replaced by the row's value, URL-encoded; nil if one is null.
    static func url(_ template: String, _ values: PipelineRow) -> String? {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            out += rest[..<open]
            let name = String(rest[rest.index(after: open)..<close])
            guard let text = values[name]?.text else { return nil }
            out += text.addingPercentEncoding(withAllowedCharacters: .urlUnreservedSet) ?? text
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    /// Looks up `keys` (key → URL) with at most `concurrency` requests in flight. Keys are
    /// claimed in the control plane a few at a time, just ahead of their requests, and answers
    /// are cached (and claims released) every 50 ms, so another process waiting for one of
    /// them waits about one answer's time more. Returns the answers (reduced to the picked fields,
    /// as JSON array text), why the others failed, and the keys claimed elsewhere.
    func lookUp(_ keys: [String: String], namespace: String, holder: String, tokens: TokenReservoir?,
                figures: inout Figures) async throws(SluiceError) -> (answers: [String: String], failed: [String: String], elsewhere: [String: String]) {
        var unclaimed = Array(keys)[...]
        var ready: [(key: String, url: String, claimed: Bool)] = []
        var next = 0
        var elsewhere: [String: String] = [:]
        var answers: [String: String] = [:]
        var failures: [String: String] = [:]
        var unsaved: [String: String] = [:]
        var unreleased: [String] = []
        var problem: SluiceError? = nil
        var tally = figures
        var savedAt = MonotonicClock.seconds()
        let concurrency = max(1, spec.concurrency)
        let started = MonotonicClock.seconds()
        var answered = 0
        var latency = 0.0  // seconds, summed over the answers
        await withTaskGroup(of: (String, Result<String, SluiceError>, Int, Double, Bool).self) { group in
            var running = 0
            // An API that answers within 20 ms: asking again costs less than waiting for another
            // process's answer, so keys are no longer claimed, and those claimed elsewhere are
            // asked here too.
            func fast() -> Bool { answered >= 8 && latency / Double(answered) < 0.02 }
            func claimMore() async throws(SluiceError) {
                if next == ready.count, !elsewhere.isEmpty, fast() {
                    ready.append(contentsOf: elsewhere.map { ($0.key, $0.value, false) })
                    elsewhere = [:]
                }
                while next == ready.count, !unclaimed.isEmpty {
                    // About 100 ms of lookups at the pace so far (a fast API: fewer claims), at
                    // least two rounds of the concurrency.
                    let pace = Double(answered) / max(0.01, MonotonicClock.seconds() - started)
                    let chunk = max(8, concurrency * 2, min(4_096, Int(pace / 10)))
                    let some = unclaimed.prefix(chunk)
                    unclaimed = unclaimed.dropFirst(chunk)
                    if fast() {
                        ready.append(contentsOf: some.map { ($0.key, $0.value, false) })
                        continue
                    }
                    let lasts = spec.timeout + 5 + (spec.rate.map { Double(some.count) / $0 } ?? 0)
                    let mine = try await env.claimLookups(namespace: namespace, keys: some.map(\.key), holder: holder,
                                                          until: Date().addingTimeInterval(lasts), now: Date())
                    for (key, url) in some {
                        if mine.contains(key) { ready.append((key, url, true)) } else { elsewhere[key] = url }
                    }
                }
            }
            func start() {
                while running < concurrency, next < ready.count {
                    let (key, url, claimed) = ready[next]
                    next += 1
                    running += 1
                    group.addTask {
                        let t0 = MonotonicClock.seconds()
                        let (r, n) = await self.fetch(url, tokens: tokens)
                        return (key, r, n, MonotonicClock.seconds() - t0, claimed)
                    }
                }
            }
            func save() async throws(SluiceError) {
                if !unsaved.isEmpty {
                    try await env.cache(namespace: namespace, entries: unsaved, expiresAt: Date().addingTimeInterval(spec.cacheTTL))
                    unsaved = [:]
                }
                if !unreleased.isEmpty {
                    try await env.releaseLookups(namespace: namespace, keys: unreleased, holder: holder)
                    unreleased = []
                }
            }
            do throws(SluiceError) {
                try await claimMore()
                start()
                while let (key, result, attempts, took, claimed) = await group.next() {
                    running -= 1
                    answered += 1
                    latency += took
                    tally.attempts += attempts
                    if claimed { unreleased.append(key) }
                    switch result {
                    case .success(let body):
                        do {
                            let v = try JSONParser.parse(body)
                            let picked = JSONValue.array(spec.fields.map { v.value(path: $0.value.split(separator: ".").map(String.init)) ?? .null }).text
                            answers[key] = picked
                            unsaved[key] = picked
                        } catch {
                            failures[key] = "the answer is not JSON: \(error)"
                        }
                    case .failure(let e): failures[key] = e.message
                    }
                    // Answers reach the cache within 50 ms (a waiting process waits little more)
                    // without a control-plane write per answer.
                    if running == 0 || MonotonicClock.seconds() - savedAt >= 0.05 {
                        try await save()
                        savedAt = MonotonicClock.seconds()
                    }
                    try await claimMore()
                    start()
                }
                try await save()
            } catch {
                problem = error
                group.cancelAll()
            }
        }
        if let problem { throw problem }
        tally.fetched += answers.count
        tally.failed += failures.count
        figures = tally
        for (outcome, n) in [("fetched", answers.count), ("failed", failures.count)] where n > 0 {
            Counter(label: "sluice_enrich_requests_total", dimensions: [("step", spec.name), ("outcome", outcome)]).increment(by: n)
        }
        return (answers, failures, elsewhere)
    }

    /// One lookup: rate-limited, retried. Returns the body or why it failed, and the attempts.
    func fetch(_ url: String, tokens: TokenReservoir?) async -> (Result<String, SluiceError>, Int) {
        var attempt = 0
        while true {
            attempt += 1
            await tokens?.take()
            var retryAfter: Double? = nil
            let why: String
            switch await env.get(url, timeout: spec.timeout) {
            case .answered(let status, let body, let after):
                if (200..<300).contains(status) { return (.success(String(decoding: body, as: UTF8.self)), attempt) }
                why = "HTTP \(status)"
                guard status == 429 || status == 408 || status >= 500 else { return (.failure(SluiceError(.refused, why)), attempt) }
                retryAfter = after.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            case .failed(let e):
                why = e
            }
            if attempt >= spec.maxAttempts { return (.failure(SluiceError(.unavailable, "\(why) after \(attempt) attempts")), attempt) }
            let backoff = retryAfter ?? min(10, 0.1 * pow(2, Double(attempt - 1))) * Double.random(in: 0.5...1)
            try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
        }
    }
}

extension CharacterSet {
    /// RFC 3986 unreserved characters: letters, digits, `-._~`.
    static let urlUnreservedSet = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}
