import Hummingbird
import HTTPTypes
import Crypto
import SluiceCore
import SluiceQueue
import SluiceConfig
import Foundation

/// The operator's console at `/`: server-rendered pages (no JavaScript needed) over the same
/// control plane as the API — the overview (jobs by state and entity, recent failures, runs,
/// receivers), the jobs list with keyset pages, a job's page with cancel and retry, the
/// pipelines with their DAG drawn, watches, exports and uploads.
/// Signing in takes an API token and keeps it in an HttpOnly, SameSite=Strict cookie; every
/// form that changes something carries a CSRF token derived from it; every value is escaped.
struct Console: Sendable {
    let deps: APIDependencies
    /// The configured tokens, hashed once.
    let auth: BearerAuth<BasicRequestContext>
    static let cookie = "sluice_session"

    init(deps: APIDependencies) {
        self.deps = deps
        auth = BearerAuth(tokens: deps.tokens)
    }

    // MARK: Sign-in

    /// The token the request carries (cookie or bearer header) when it is a configured one;
    /// "" when the server runs without tokens; nil when it must sign in.
    func session(_ request: Request) -> String? {
        if deps.tokens.isEmpty { return "" }
        if let h = request.headers[.authorization], h.lowercased().hasPrefix("bearer "), auth.accepts(String(h.dropFirst(7))) { return String(h.dropFirst(7)) }
        if let c = BearerAuth<BasicRequestContext>.sessionCookie(request), auth.accepts(c) { return c }
        return nil
    }

    /// The CSRF token of a session: an HMAC of a fixed purpose under the session's token.
    static func csrf(_ session: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data("sluice console csrf".utf8), using: SymmetricKey(data: Data(session.utf8)))
            .map { String(format: "%02x", $0) }.joined()
    }

    func loginPage(_ message: String? = nil, status: HTTPResponse.Status = .ok) -> Response {
        page("Sign in", status: status, """
            <h1>Sign in</h1>
            \(message.map { "<p class=\"error\">\(h($0))</p>" } ?? "")
            <form method="post" action="/login">
              <label>API token <input type="password" name="token" autocomplete="current-password" required></label>
              <button type="submit">Sign in</button>
            </form>
            """)
    }

    func login(_ request: Request) async throws -> Response {
        let form = try await Self.form(request)
        let token = form["token"] ?? ""
        guard auth.accepts(token) else {
            return loginPage("That token is not one of this server's.", status: .unauthorized)
        }
        let value = token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        return Response(status: .seeOther, headers: [.location: "/", .setCookie: "\(Self.cookie)=\(value); Path=/; HttpOnly; SameSite=Strict"])
    }

    // MARK: Pages

    func overview(_ session: String) async throws -> Response {
        let counts = try await deps.driver.jobCounts()
        let states = JobState.allCases
        var byEntity: [String: [JobState: Int]] = [:]
        for c in counts { byEntity["\(c.entity) (\(c.kind))", default: [:]][c.state, default: 0] += c.count }
        var body = "<h1>Overview</h1>\n<h2>Jobs</h2>\n"
        body += table(["entity (kind)"] + states.map(\.rawValue), byEntity.keys.sorted().map { key in
            [h(key)] + states.map { s in
                let n = byEntity[key]?[s] ?? 0
                return n == 0 ? "0" : "<a href=\"/ui/jobs?state=\(s.rawValue)&entity=\(u(String(key.prefix { $0 != " " })))\">\(n)</a>"
            }
        })
        var newest = JobListParams(state: .error, limit: 10)
        newest.newestFirst = true
        let failures = try await deps.driver.listJobs(newest)
        body += "<h2>Recent failures</h2>\n" + (failures.isEmpty ? "<p>None.</p>" : table(["job", "entity", "file", "error"], failures.map { j in
            ["<a href=\"/ui/jobs/\(j.id)\">\(j.id)</a>", h(j.entity), h(j.spec.fileName ?? j.spec.source), h(j.error ?? "")]
        }))
        let runs = try await deps.driver.runs(pipeline: nil, limit: 10)
        body += "<h2>Pipeline runs</h2>\n" + (runs.isEmpty ? "<p>None yet.</p>" : table(["run", "pipeline", "state", "started", "counts", "error"], runs.map { r in
            [String(r.id), h(r.pipeline), h(r.state.rawValue), h(Self.time(r.startedAt)), h(r.counts ?? ""), h(r.error ?? "")]
        }))
        if let store = deps.exports {
            let receivers = DestinationSummary.of(try await store.batches(nil))
            body += "<h2>Exports</h2>\n" + (receivers.isEmpty ? "<p>None yet.</p>" : table(["receiver", "delivered", "pending", "dead", "last answer"], receivers.map { d in
                [h(d.url), "\(d.delivered) (\(d.deliveredRows) rows)", "\(d.pending) (\(d.pendingRows) rows)", "\(d.dead) (\(d.deadRows) rows)",
                 h(d.undelivered.last.map { "\($0.lastStatus.map(String.init) ?? "-") \($0.lastError ?? "")" } ?? "")]
            }))
        }
        return page("Overview", refresh: 10, body)
    }

    func jobs(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let state = q["state"].flatMap { JobState(rawValue: String($0)) }
        let entity = q["entity"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let after = q["after"].flatMap { Int64(String($0)) }
        var params = JobListParams(state: state, entity: entity, after: after, limit: 50)
        params.newestFirst = true
        let page = try await deps.driver.listJobs(params)
        var body = "<h1>Jobs</h1>\n<p>Newest first.</p>\n<form method=\"get\" action=\"/ui/jobs\"><label>state <select name=\"state\"><option value=\"\">any</option>"
        for s in JobState.allCases { body += "<option\(s == state ? " selected" : "")>\(s.rawValue)</option>" }
        body += "</select></label> <label>entity <input name=\"entity\" value=\"\(h(entity ?? ""))\"></label> <button>Filter</button></form>\n"
        body += table(["job", "entity", "kind", "state", "file", "attempts", "created", "rows"], page.map { j in
            ["<a href=\"/ui/jobs/\(j.id)\">\(j.id)</a>", h(j.entity), h(j.spec.stage?.kind.rawValue ?? "load"), h(j.state.rawValue),
             h(j.spec.fileName ?? j.spec.source), "\(j.attempts)/\(j.maxAttempts)", h(Self.time(j.createdAt)), "\(j.result?.stats.read ?? j.progress.rows)"]
        })
        if page.count == 50, let last = page.last {
            body += "<p><a href=\"/ui/jobs?state=\(state?.rawValue ?? "")&entity=\(u(entity ?? ""))&after=\(last.id)\">Next page</a></p>"
        }
        return self.page("Jobs", body)
    }

    func job(_ id: Int64, session: String) async throws -> Response {
        guard let j = try await deps.driver.job(id: id) else { return page("Not found", status: .notFound, "<h1>No job \(id)</h1>") }
        let s = j.result?.stats
        var body = "<h1>Job \(j.id)</h1>\n" + table(["", ""], [
            ["entity", h(j.entity)], ["state", h(j.state.rawValue)], ["file", h(j.spec.fileName ?? j.spec.source)],
            ["attempts", "\(j.attempts) of \(j.maxAttempts)\(j.rescues > 0 ? ", \(j.rescues) rescued" : "")"],
            ["created", h(Self.time(j.createdAt))], ["started", h(j.startedAt.map(Self.time) ?? "-")], ["finished", h(j.finishedAt.map(Self.time) ?? "-")],
            ["rows", s.map { "read \($0.read), inserted \($0.inserted), updated \($0.updated), deleted \($0.deleted), skipped \($0.skipped), rejected \($0.rejected)" } ?? "\(j.progress.rows) so far"],
            ["error", h(j.error ?? "")],
        ])
        if j.result?.rejectsPath != nil {
            body += "<p><a href=\"/\(u(j.entity))/_bulk/\(j.id)/rejects\">Rejected rows (CSV)</a></p>\n"
        }
        let csrf = Self.csrf(session)
        if !j.state.isFinal {
            body += "<form method=\"post\" action=\"/ui/jobs/\(j.id)/cancel\"><input type=\"hidden\" name=\"csrf\" value=\"\(csrf)\"><button>Cancel</button></form>\n"
        }
        if j.state == .error || j.state == .cancelled {
            body += "<form method=\"post\" action=\"/ui/jobs/\(j.id)/retry\"><input type=\"hidden\" name=\"csrf\" value=\"\(csrf)\"><button>Retry</button></form>\n"
        }
        return page("Job \(j.id)", body)
    }

    /// Declared pipelines: source, target, schedule and its next firing, `after:`, recent runs.
    func pipelines(session: String) async throws -> Response {
        var body = "<h1>Pipelines</h1>\n"
        let now = deps.now()
        let declared = deps.config.pipelines.values.sorted { $0.name < $1.name }
        if declared.isEmpty { body += "<p>None declared in sluice.yml.</p>" } else {
            body += Self.graph(declared.map { ($0.name, $0.after) })
        }
        let csrf = Self.csrf(session)
        body += table(["pipeline", "source", "into", "schedule", "next firing", "after", "staged", ""], declared.map { p in
            let next = p.schedule.flatMap { try? CronSchedule($0, timeZone: p.timeZone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")!) }?.next(after: now)
            // A pipeline fed by uploads runs when a file is posted; the others can run now.
            let action = "<form method=\"post\" action=\"/ui/pipelines/\(u(p.name))/run\"><input type=\"hidden\" name=\"csrf\" value=\"\(csrf)\">"
            let button = deps.runNow == nil || p.source == Pipeline.uploadSource ? "" : action + "<button>Run now</button></form>"
                + action + "<label>files modified from <input type=\"date\" name=\"from\" required></label> <label>to <input type=\"date\" name=\"to\" required></label> <button>Backfill</button></form>"
            return [h(p.name), h(p.source + (p.glob.map { " (\($0))" } ?? "")), h(p.into), h(p.schedule.map { "\($0) \(p.timeZone ?? "UTC")" } ?? "by hand"),
                    h(next.map(Self.time) ?? "-"), h(p.after.joined(separator: ", ")), p.staged ? "yes" : "no", button]
        })
        let runs = try await deps.driver.runs(pipeline: nil, limit: 50)
        body += "<h2>Recent runs</h2>\n" + (runs.isEmpty ? "<p>None yet.</p>" : table(["run", "pipeline", "state", "for firing", "started", "finished", "counts", "error"], runs.map { r in
            [String(r.id), h(r.pipeline), h(r.state.rawValue), h(r.scheduledFor.map(Self.time) ?? "by hand"), h(Self.time(r.startedAt)),
             h(r.finishedAt.map(Self.time) ?? "-"), h(r.counts ?? ""), h(r.error ?? "")]
        }))
        return page("Pipelines", body)
    }

    /// The pipelines drawn as a DAG in inline SVG: one column per depth (a pipeline sits one
    /// column right of the deepest one it runs after), an arrow per `after:`. Names escaped.
    static func graph(_ nodes: [(name: String, after: [String])]) -> String {
        let known = Dictionary(nodes.map { ($0.name, $0.after) }, uniquingKeysWith: { a, _ in a })
        var depth: [String: Int] = [:]
        func level(_ name: String, _ seen: Set<String>) -> Int {
            if let d = depth[name] { return d }
            guard !seen.contains(name) else { return 0 }  // a cycle (validation refuses them): drawn flat
            let d = (known[name] ?? []).filter { known[$0] != nil }.map { level($0, seen.union([name])) + 1 }.max() ?? 0
            depth[name] = d
            return d
        }
        let (w, hgt, gapX, gapY) = (170, 28, 60, 14)
        var place: [String: (x: Int, y: Int)] = [:]
        var columns: [Int: [String]] = [:]
        for n in nodes.map(\.name).sorted() { columns[level(n, []), default: []].append(n) }
        for (c, names) in columns { for (r, n) in names.enumerated() { place[n] = (10 + c * (w + gapX), 10 + r * (hgt + gapY)) } }
        let width = 20 + (columns.keys.max() ?? 0) * (w + gapX) + w
        let height = 20 + (columns.values.map(\.count).max() ?? 1) * (hgt + gapY) - gapY
        var svg = "<svg role=\"img\" aria-label=\"pipeline graph\" width=\"\(width)\" height=\"\(height)\" xmlns=\"http://www.w3.org/2000/svg\">"
            + "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#555\"/></marker></defs>"
        for n in nodes {
            guard let to = place[n.name] else { continue }
            for dep in n.after {
                guard let from = place[dep] else { continue }
                svg += "<line class=\"edge\" data-from=\"\(escape(dep))\" data-to=\"\(escape(n.name))\" x1=\"\(from.x + w)\" y1=\"\(from.y + hgt / 2)\" x2=\"\(to.x)\" y2=\"\(to.y + hgt / 2)\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>"
            }
        }
        for (n, p) in place.sorted(by: { $0.key < $1.key }) {
            let label = n.count > 24 ? String(n.prefix(23)) + "…" : n
            svg += "<g class=\"node\"><title>\(escape(n))</title><rect x=\"\(p.x)\" y=\"\(p.y)\" width=\"\(w)\" height=\"\(hgt)\" rx=\"5\" fill=\"#eef3fb\" stroke=\"#6a8cc7\"/>"
                + "<text x=\"\(p.x + 8)\" y=\"\(p.y + 18)\" font-size=\"13\">\(escape(label))</text></g>"
        }
        return svg + "</svg>\n"
    }

    /// Files posted to the bulk API, a page at a time (by id): size, checksum, and whether
    /// the file is still kept (retention removes it once its job is done).
    func uploads(_ request: Request) async throws -> Response {
        let after = request.uri.queryParameters.get("after")
        let page = try await deps.driver.uploads(after: after, limit: 100)
        var body = "<h1>Uploads</h1>\n"
        body += page.isEmpty ? "<p>None\(after == nil ? "" : " after this point").</p>" : table(["id", "file name", "size", "sha-256", "received", "file"], page.map { u in
            [h(u.id), h(u.originalName ?? "-"), "\(u.size)", h(String(u.sha256.prefix(16))) + "…", h(Self.time(u.createdAt)),
             FileManager.default.fileExists(atPath: u.path) ? "kept" : "removed"]
        })
        if page.count == 100, let last = page.last { body += "<p><a href=\"/ui/uploads?after=\(u(last.id))\">Next page</a></p>" }
        return self.page("Uploads", body)
    }

    /// POST /ui/pipelines/{name}/run: starts a run (each source file once, as `sluice run`).
    func runNow(_ request: Request, name: String, session: String) async throws -> Response {
        let form = try await Self.form(request)
        guard checked(form, session) else { return refused() }
        guard let start = deps.runNow, deps.config.pipelines[name] != nil else { return page("Not found", status: .notFound, "<h1>No pipeline \(h(name))</h1>") }
        // A backfill's days, as `sluice run --from --to` takes them (UTC midnights).
        var window: [Date?] = []
        for key in ["from", "to"] {
            guard let text = form[key], !text.isEmpty else { window.append(nil); continue }
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withFullDate]
            guard let day = f.date(from: text) else { return page("Bad date", status: .badRequest, "<h1>\(h(text)) is not a date (YYYY-MM-DD)</h1>") }
            window.append(day)
        }
        _ = try await start(name, window[0], window[1])
        return Response(status: .seeOther, headers: [.location: "/ui/pipelines"])
    }

    /// Declared watches: every file version in the ledger, its state and job.
    func watches() async throws -> Response {
        var body = "<h1>Watches</h1>\n"
        let names = deps.config.watches.keys.sorted()
        if names.isEmpty { body += "<p>None declared in sluice.yml.</p>" }
        for name in names {
            let w = deps.config.watches[name]
            let files = try await deps.driver.watchedFiles(watch: name, keys: nil)
            body += "<h2>\(h(name))</h2>\n<p>\(h(w?.source ?? "")) → \(h(w?.into ?? ""))</p>\n"
            body += files.isEmpty ? "<p>No file seen yet.</p>" : table(["file", "size", "modified", "state", "job", "error"], files.suffix(200).reversed().map { f in
                [h(f.key), "\(f.size)", h(Self.time(f.lastModified)), h(f.state.rawValue), f.jobID.map { "<a href=\"/ui/jobs/\($0)\">\($0)</a>" } ?? "-", h(f.error ?? "")]
            })
        }
        return page("Watches", body)
    }

    /// Export receivers: batches delivered, pending and dead, what each undelivered batch
    /// got back, and a button that sends the dead letters again on the next run.
    func exports(session: String) async throws -> Response {
        var body = "<h1>Exports</h1>\n"
        guard let store = deps.exports else { return page("Exports", body + "<p>No export ledger in this database.</p>") }
        let receivers = DestinationSummary.of(try await store.batches(nil))
        if receivers.isEmpty { body += "<p>Nothing exported yet.</p>" }
        for d in receivers {
            body += "<h2>\(h(d.url))</h2>\n<p>delivered \(d.delivered) batches (\(d.deliveredRows) rows), pending \(d.pending) (\(d.pendingRows)), dead \(d.dead) (\(d.deadRows))</p>\n"
            if !d.undelivered.isEmpty {
                body += table(["batch", "state", "rows", "keys", "attempts", "status", "error", "answer"], d.undelivered.map { b in
                    ["\(b.batch)", h(b.state.rawValue), "\(b.rows)", h("\(b.firstKey) … \(b.lastKey)"), "\(b.attempts)", b.lastStatus.map(String.init) ?? "-",
                     h(b.lastError ?? ""), h(b.response ?? "")]
                })
            }
            if d.dead > 0 {
                body += "<form method=\"post\" action=\"/ui/exports/retry\"><input type=\"hidden\" name=\"csrf\" value=\"\(Self.csrf(session))\">"
                    + "<input type=\"hidden\" name=\"to\" value=\"\(h(d.url))\"><button>Retry dead letters</button></form>\n"
            }
        }
        return page("Exports", body)
    }

    /// POST /ui/exports/retry: the receiver's dead letters go back to pending.
    func retryDead(_ request: Request, session: String) async throws -> Response {
        let form = try await Self.form(request)
        guard checked(form, session) else { return refused() }
        guard let store = deps.exports, let to = form["to"] else { return page("Not found", status: .notFound, "<h1>No such receiver</h1>") }
        let n = try await store.retryDead(to)
        return page("Exports", "<h1>Exports</h1><p>\(n) dead-lettered batch\(n == 1 ? "" : "es") of \(h(to)) will be sent again by the next export run.</p><p><a href=\"/ui/exports\">Back</a></p>")
    }

    func checked(_ form: [String: String], _ session: String) -> Bool {
        guard let given = form["csrf"] else { return false }
        return BearerAuth<BasicRequestContext>.constantTimeEqual(Array(given.utf8), Array(Self.csrf(session).utf8))
    }

    func refused() -> Response {
        page("Refused", status: .forbidden, "<h1>Refused</h1><p>The form's CSRF token is missing or wrong: reload the page.</p>")
    }

    /// POST /ui/jobs/{id}/cancel|retry: needs the session's CSRF token; back to the job's page.
    func act(_ request: Request, id: Int64, action: String, session: String) async throws -> Response {
        guard checked(try await Self.form(request), session) else { return refused() }
        let done = action == "cancel" ? try await deps.driver.cancelJob(JobCancelParams(id: id, now: deps.now()))
                                      : try await deps.driver.retryJob(JobRetryParams(id: id, now: deps.now()))
        if done != nil, action == "retry" { deps.wake?.poke() }
        guard done != nil else { return page("Conflict", status: .conflict, "<h1>Job \(id) cannot be \(action == "cancel" ? "cancelled" : "retried") now</h1><p><a href=\"/ui/jobs/\(id)\">Back</a></p>") }
        return Response(status: .seeOther, headers: [.location: "/ui/jobs/\(id)"])
    }

    // MARK: Rendering

    /// `s` safe inside HTML text and double-quoted attributes.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    func h(_ s: String) -> String { Self.escape(s) }
    func u(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "" }

    static func time(_ d: Date) -> String {
        ISO8601DateFormatter.string(from: d, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withInternetDateTime])
    }

    /// A table whose cells are already HTML.
    func table(_ head: [String], _ rows: [[String]]) -> String {
        "<table>\n<tr>" + head.map { "<th>\(h($0))</th>" }.joined() + "</tr>\n"
            + rows.map { "<tr>" + $0.map { "<td>\($0)</td>" }.joined() + "</tr>\n" }.joined() + "</table>\n"
    }

    /// `refresh`: seconds after which the browser reloads the page (live figures without script).
    func page(_ title: String, status: HTTPResponse.Status = .ok, refresh: Int? = nil, _ body: String) -> Response {
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(h(title)) · Sluice</title>\(refresh.map { "<meta http-equiv=\"refresh\" content=\"\($0)\">" } ?? "")
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <style>body{font:14px system-ui,sans-serif;margin:1.5em;max-width:72em}table{border-collapse:collapse;margin:.5em 0}
            td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}
            nav a{margin-right:1em}.error{color:#a00}</style></head>
            <body><nav><a href="/">Overview</a><a href="/ui/jobs">Jobs</a><a href="/ui/jobs?state=error">Failed</a><a href="/ui/pipelines">Pipelines</a><a href="/ui/watches">Watches</a><a href="/ui/exports">Exports</a><a href="/ui/uploads">Uploads</a><a href="/metrics">Metrics</a></nav>
            \(body)
            </body></html>
            """
        // The pages load nothing from elsewhere and run no script.
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
                                                   .init("X-Frame-Options")!: "DENY", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A urlencoded form body (at most 64 KiB).
    static func form(_ request: Request) async throws -> [String: String] {
        let buffer = try await request.body.collect(upTo: 64 << 10)
        var out: [String: String] = [:]
        for pair in String(buffer: buffer).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            if kv.count == 2 { out[kv[0]] = kv[1] }
        }
        return out
    }

    // MARK: Routes

    func add(to router: Router<BasicRequestContext>) {
        router.get("/login") { _, _ in self.loginPage() }
        router.post("/login") { req, _ in try await self.login(req) }
        router.get("/") { req, _ in
            guard let s = self.session(req) else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            return try await self.overview(s)
        }
        router.get("/ui/jobs") { req, _ in
            guard self.session(req) != nil else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            return try await self.jobs(req)
        }
        router.get("/ui/jobs/:id") { req, ctx in
            guard let s = self.session(req) else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            guard let id = ctx.parameters.get("id").flatMap(Int64.init) else { return self.page("Not found", status: .notFound, "<h1>Not found</h1>") }
            return try await self.job(id, session: s)
        }
        router.get("/ui/pipelines") { req, _ in
            guard let s = self.session(req) else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            return try await self.pipelines(session: s)
        }
        router.post("/ui/pipelines/:name/run") { req, ctx in
            guard let s = self.session(req) else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            return try await self.runNow(req, name: ctx.parameters.get("name") ?? "", session: s)
        }
        router.get("/ui/watches") { req, _ in
            guard self.session(req) != nil else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            return try await self.watches()
        }
        router.get("/ui/uploads") { req, _ in
            guard self.session(req) != nil else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            return try await self.uploads(req)
        }
        router.get("/ui/exports") { req, _ in
            guard let s = self.session(req) else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            return try await self.exports(session: s)
        }
        router.post("/ui/exports/retry") { req, _ in
            guard let s = self.session(req) else { return Response(status: .seeOther, headers: [.location: "/login"]) }
            return try await self.retryDead(req, session: s)
        }
        for action in ["cancel", "retry"] {
            router.post("/ui/jobs/:id/\(action)") { req, ctx in
                guard let s = self.session(req) else { return Response(status: .seeOther, headers: [.location: "/login"]) }
                guard let id = ctx.parameters.get("id").flatMap(Int64.init) else { return self.page("Not found", status: .notFound, "<h1>Not found</h1>") }
                return try await self.act(req, id: id, action: action, session: s)
            }
        }
    }
}
