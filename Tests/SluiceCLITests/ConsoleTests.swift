import Testing
import Foundation

/// Issue 18: the console at `/` over a live server with real jobs — sign-in with a token into
/// an HttpOnly, SameSite=Strict cookie, pages that escape what files and errors say, and
/// cancel and retry that need the session's CSRF token. Driven with curl, as a browser would
/// send the forms (no JavaScript involved).
@Suite(.serialized) struct ConsoleTests {
    /// Runs curl; returns the status line's code, the headers and the body.
    func curl(_ args: [String]) throws -> (status: Int, headers: String, body: String) {
        let out = try TestPostgres.run(["curl", "-s", "-i"] + args)
        let parts = out.components(separatedBy: "\r\n\r\n")
        let head = parts.first ?? ""
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, head, parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    @Test func signInSeeJobsEscapedAndCancelOrRetryWithTheCSRFToken() async throws {
        let srv = try ServerProcess(noWorkers: true)
        let base = "http://127.0.0.1:\(srv.port)"
        let anonymous = try curl([base + "/"])
        #expect(anonymous.status == 303 && anonymous.headers.lowercased().contains("location: /login"), "\(anonymous.headers)")
        #expect(try curl([base + "/ui/jobs/1"]).status == 303)
        let wrong = try curl(["-X", "POST", "--data-urlencode", "token=nope", base + "/login"])
        #expect(wrong.status == 401 && wrong.body.contains("not one of this server"), "\(wrong.body)")
        let login = try curl(["-X", "POST", "--data-urlencode", "token=\(srv.token)", base + "/login"])
        #expect(login.status == 303 && login.headers.contains("sluice_session=") && login.headers.contains("HttpOnly") && login.headers.contains("SameSite=Strict"), "\(login.headers)")
        let cookie = "sluice_session=\(srv.token)"

        // A job that fails (its file's name is markup), then one left queued (no workers).
        let (s1, bad) = try await srv.json("POST", "/registros/_bulk?max_rejects=0&filename=%3Ci%3Ex%22.csv", body: "id,valor\n1,2.5\n2,3.5,9\n", headers: ["Content-Type": "text/csv"])
        #expect(s1 == 202, "\(bad)")
        let failed = try #require(bad["id"] as? Int)
        let w = try srv.cli.run(["worker", "--once"])
        #expect(w.status == 0, "\(w.err)")
        let (_, good) = try await srv.json("POST", "/registros/_bulk", body: "id,valor\n2,2.5\n", headers: ["Content-Type": "text/csv"])
        let queued = try #require(good["id"] as? Int)

        let overview = try curl(["-H", "Cookie: \(cookie)", base + "/"])
        #expect(overview.status == 200 && overview.headers.contains("Content-Security-Policy"), "\(overview.headers)")
        #expect(overview.body.contains("Recent failures") && overview.body.contains("&lt;i&gt;x&quot;.csv") && !overview.body.contains("<i>x"), "\(overview.body)")
        #expect(overview.body.contains("<a href=\"/ui/jobs/\(failed)\">\(failed)</a>"))

        let page = try curl(["-H", "Cookie: \(cookie)", base + "/ui/jobs/\(queued)"])
        #expect(page.status == 200 && page.body.contains("action=\"/ui/jobs/\(queued)/cancel\""), "\(page.body)")
        let csrf = try #require(page.body.range(of: "name=\"csrf\" value=\"").map { String(page.body[$0.upperBound...].prefix(64)) })
        let forged = try curl(["-H", "Cookie: \(cookie)", "-X", "POST", "--data-urlencode", "csrf=0000", base + "/ui/jobs/\(queued)/cancel"])
        #expect(forged.status == 403)
        let cancel = try curl(["-H", "Cookie: \(cookie)", "-X", "POST", "--data-urlencode", "csrf=\(csrf)", base + "/ui/jobs/\(queued)/cancel"])
        #expect(cancel.status == 303, "\(cancel.headers)\(cancel.body)")
        #expect(try await srv.json("GET", "/registros/_bulk/status/\(queued)").1["state"] as? String == "cancelled")
        let retry = try curl(["-H", "Cookie: \(cookie)", "-X", "POST", "--data-urlencode", "csrf=\(csrf)", base + "/ui/jobs/\(failed)/retry"])
        #expect(retry.status == 303)
        #expect(try await srv.json("GET", "/registros/_bulk/status/\(failed)").1["state"] as? String == "queued")

        let list = try curl(["-H", "Cookie: \(cookie)", base + "/ui/jobs?state=cancelled"])
        #expect(list.body.contains("<a href=\"/ui/jobs/\(queued)\">\(queued)</a>") && !list.body.contains("/ui/jobs/\(failed)\""), "\(list.body)")
        // The session reads the API's GETs (the metrics link), never its changes.
        #expect(try curl(["-H", "Cookie: \(cookie)", base + "/metrics"]).status == 200)
        #expect(try curl(["-H", "Cookie: \(cookie)", "-X", "DELETE", base + "/registros/_bulk/\(failed)"]).status == 401)
    }

    /// Every page in headless Chromium over a live server (no sign-in on a loopback
    /// `--no-auth` server), with a dead-lettered export to retry; screenshots are saved under
    /// the test's folder (`shots/`; `docs/console/` holds a set for the README).
    @Test func thePagesRenderInHeadlessChromium() async throws {
        let cli = try CLI()
        try ExportTests().table(cli, rows: 1...3_000)
        let rx = try Receiver(dir: cli.dir + "/rx", args: ["--refuse-every", "2"])
        defer { rx.stop() }
        #expect(try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "1000"]).status == 3)
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("sluice.yml", """
            entities:
              t:
                primary_key: [id]
            pipelines:
              nightly:
                source: in
                schedule: "0 6 * * *"
                timezone: America/Sao_Paulo
                into: t
            watches:
              drops:
                source: in
                into: t
            """)
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: CLI.binary)
        serve.arguments = ["serve", "--port", "0", "--no-auth", "--no-workers"]
        serve.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        let out = Pipe()
        serve.standardOutput = out
        serve.standardError = FileHandle(forWritingAtPath: cli.write("serve.log", ""))
        try serve.run()
        defer { serve.terminate(); serve.waitUntilExit() }
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            line.append(d)
        }
        let text = String(decoding: line, as: UTF8.self)
        let port = try #require(text.range(of: "127.0.0.1:").flatMap { Int(text[$0.upperBound...].prefix { $0.isNumber }) }, "\(text)")
        let base = "http://127.0.0.1:\(port)"
        try FileManager.default.createDirectory(atPath: cli.dir + "/shots", withIntermediateDirectories: true)
        // An upload (its job waits: no workers) for the uploads page.
        let upload = try curl(["-X", "POST", "-H", "Content-Type: text/csv", "--data-binary", "id,name,amount\n1,a,1\n", base + "/t/_bulk?filename=drop-one.csv"])
        #expect(upload.status == 202, "\(upload.body)")
        func chromium(_ args: [String]) throws -> String {
            try TestPostgres.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"] + args)
        }
        for (path, name, expected) in [("/", "overview", "Recent failures"), ("/ui/jobs", "jobs", "<h1>Jobs</h1>"),
                                       ("/ui/pipelines", "pipelines", "0 6 * * * America/Sao_Paulo"), ("/ui/watches", "watches", "<h2>drops</h2>"),
                                       ("/ui/exports", "exports", "Retry dead letters"), ("/ui/uploads", "uploads", "<td>drop-one.csv</td>"),
                                       ("/ui/pipelines", "pipelines", "<svg role=\"img\" aria-label=\"pipeline graph\"")] {
            let dom = try chromium(["--dump-dom", base + path])
            #expect(dom.contains(expected), "\(path): \(dom)")
            _ = try chromium(["--window-size=1280,800", "--screenshot=\(cli.dir)/shots/\(name).png", base + path])
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(cli.dir)/shots/\(name).png")[.size] as? Int) ?? 0
            #expect(size > 5_000, "\(name).png")
        }
        #expect(try chromium(["--dump-dom", base + "/ui/exports"]).contains("dead 1 (1000)"))
        // The button's form, as the browser posts it: the dead letter goes back to pending.
        #expect(try chromium(["--dump-dom", base + "/ui/uploads"]).contains("<td>kept</td>"))
        let form = try curl([base + "/ui/exports"]).body
        let csrf = try #require(form.range(of: "name=\"csrf\" value=\"").map { String(form[$0.upperBound...].prefix(64)) })
        let posted = try curl(["-X", "POST", "--data-urlencode", "csrf=\(csrf)", "--data-urlencode", "to=\(rx.url)", base + "/ui/exports/retry"])
        #expect(posted.status == 200 && posted.body.contains("1 dead-lettered batch of"), "\(posted.body)")
        #expect(try chromium(["--dump-dom", base + "/ui/exports"]).contains("dead 0 (0)"))
        // "Run now" starts the pipeline over its own source; its run shows on the page.
        cli.write("in/a.csv", "id,name,amount\n900001,late,1\n")
        let ran = try curl(["-X", "POST", "--data-urlencode", "csrf=\(csrf)", base + "/ui/pipelines/nightly/run"])
        #expect(ran.status == 303, "\(ran.body)")
        var pipelines = ""
        let until = Date().addingTimeInterval(60)  // a loaded machine: the run may take a while
        while Date() < until {
            pipelines = try curl([base + "/ui/pipelines"]).body
            // The scheduled catch-up run may have succeeded already: wait for the one started by hand.
            if pipelines.contains("<td>succeeded</td><td>by hand</td>") || pipelines.contains("<td>failed</td><td>by hand</td>") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(pipelines.contains("<td>nightly</td><td>succeeded</td><td>by hand</td>") && pipelines.contains("&quot;loaded&quot;:1"), "\(pipelines)")
        #expect(try cli.sqlite("SELECT name FROM t WHERE id = 900001") == "late\n")
        // A backfill over days before the file was written reads nothing.
        let back = try curl(["-X", "POST", "--data-urlencode", "csrf=\(csrf)", "--data-urlencode", "from=2020-01-01", "--data-urlencode", "to=2020-01-02",
                             base + "/ui/pipelines/nightly/run"])
        #expect(back.status == 303, "\(back.body)")
        for _ in 0..<100 {
            pipelines = try curl([base + "/ui/pipelines"]).body
            if pipelines.components(separatedBy: "<td>succeeded</td><td>by hand</td>").count == 3 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(pipelines.components(separatedBy: "<td>succeeded</td><td>by hand</td>").count == 3 && pipelines.contains("&quot;files&quot;:0"), "\(pipelines)")
        let badDay = try curl(["-X", "POST", "--data-urlencode", "csrf=\(csrf)", "--data-urlencode", "from=yesterday", base + "/ui/pipelines/nightly/run"])
        #expect(badDay.status == 400)
    }
}
