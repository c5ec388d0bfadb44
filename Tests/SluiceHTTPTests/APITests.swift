import Testing
import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes
import Yams
@testable import SluiceHTTP
import SluiceConfig
import SluiceCore
import SluiceQueue
import SluiceSQLite
import SluiceTesting
import SluiceStorage

/// The API over a scratch folder, with one declared entity and a file root. Its tests drive
/// the router in process (`.test(.router)`): they check routes and answers, and a live test
/// client's fixed 20 s read timeout failed them when the whole suite loaded both cores. The
/// server's own handlers (Expect: 100-continue, the connection guard) are tested over a real
/// `sluice serve` in the CLI tests.
struct APIHarness {
    let dir = TempDir()
    let config: SluiceConfig
    let driver: SQLiteQueueDriver
    static let token = "s3cret-token"

    init(maxBody: Int64 = 1 << 20) async throws {
        var c = try ConfigReader.parse("entities:\n  registros:\n    primary_key: [id]\n")
        c.database = dir.file("sluice.db")
        c.stateDir = dir.file(".sluice")
        c.server.maxBodyBytes = maxBody
        c.server.fileRoots = [dir.file("incoming")]
        c.server.httpAllowlist = ["files.example.com"]
        config = c
        driver = try SQLiteQueueDriver(path: c.database)
        try await driver.migrate()
    }

    var app: some ApplicationProtocol {
        let policy = SourcePolicy(uploadDir: config.uploadDir, fileRoots: config.server.fileRoots, httpAllowlist: config.server.httpAllowlist)
        var deps = APIDependencies(config: config, driver: driver, policy: policy, wake: nil, tokens: [Self.token])
        deps.metrics = MetricsEndpoint(driver: driver)
        return Application(router: SluiceAPI.router(deps), server: SluiceAPI.server())
    }

    static let auth: HTTPFields = [.authorization: "Bearer \(token)"]
    static func headers(_ extra: [(HTTPField.Name, String)] = []) -> HTTPFields {
        var h = auth
        for (k, v) in extra { h[k] = v }
        return h
    }
}

func body(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }
func object(_ r: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(r.body.readableBytesView))) as? [String: Any] ?? [:]
}

func multipart(_ parts: [(name: String, filename: String?, content: String)], boundary: String = "XyZbOuNdArY") -> (ByteBuffer, String) {
    var s = ""
    for p in parts {
        s += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(p.name)\""
        if let f = p.filename { s += "; filename=\"\(f)\"" }
        s += "\r\n\r\n\(p.content)\r\n"
    }
    s += "--\(boundary)--\r\n"
    return (ByteBuffer(string: s), "multipart/form-data; boundary=\(boundary)")
}

@Suite struct OpenAPITests {
    @Test func documentMatchesTheRoutes() throws {
        let doc = try #require(try Yams.load(yaml: SluiceAPI.openAPIText) as? [String: Any])
        #expect(doc["openapi"] as? String == "3.1.0")
        let paths = try #require(doc["paths"] as? [String: Any])
        var documented: [String] = []
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch"] where (item as? [String: Any])?[method] != nil {
                documented.append("\(method.uppercased()) \(path)")
            }
        }
        #expect(documented.sorted() == SluiceAPI.routes.sorted())
    }

    @Test func everyRouteIsServed() async throws {
        let h = try await APIHarness()
        try await h.app.test(.router) { client in
            for route in SluiceAPI.routes {
                let parts = route.split(separator: " ")
                let path = String(parts[1]).replacingOccurrences(of: "{entity}", with: "registros").replacingOccurrences(of: "{id}", with: "999").replacingOccurrences(of: "{name}", with: "nope")
                let method = HTTPRequest.Method(String(parts[0]))!
                try await client.execute(uri: path, method: method, headers: APIHarness.auth) { r in
                    // A route that exists never answers "no such route" (a bare 404 without our JSON error).
                    if r.status == .notFound { #expect(object(r)["error"] != nil, "\(route)") }
                    #expect(r.status != .methodNotAllowed, "\(route)")
                }
            }
            try await client.execute(uri: "/openapi.yaml", method: .get) { r in
                #expect(r.status == .ok && String(buffer: r.body).hasPrefix("openapi: 3.1.0"))
            }
        }
    }
}

@Suite struct APITests {
    @Test func authenticationIsRequiredAndConstantTime() async throws {
        let h = try await APIHarness()
        try await h.app.test(.router) { client in
            try await client.execute(uri: "/jobs", method: .get) { r in
                #expect(r.status == .unauthorized && r.headers[.wwwAuthenticate] == "Bearer")
                #expect(object(r)["error"] as? String == "missing bearer token")
            }
            try await client.execute(uri: "/jobs", method: .get, headers: [.authorization: "Bearer s3cret-tokem"]) { r in
                #expect(r.status == .unauthorized)
                #expect(!String(buffer: r.body).contains("s3cret"))  // never echo a secret
            }
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/jobs", method: .get, headers: APIHarness.auth) { r in #expect(r.status == .ok) }
        }
        #expect(BearerAuth<BasicRequestContext>.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!BearerAuth<BasicRequestContext>.constantTimeEqual([1, 2, 3], [1, 2, 4]))
    }

    @Test func badRequestsAreRefusedClearly() async throws {
        let h = try await APIHarness(maxBody: 1000)
        try await h.app.test(.router) { client in
            func put(_ entity: String, _ json: String) async throws -> TestResponse {
                try await client.execute(uri: "/\(entity)/_bulk", method: .put, headers: APIHarness.headers([(.contentType, "application/json")]), body: body(json))
            }
            var r = try await put("nope", #"{"url": "upload:abc"}"#)
            #expect(r.status == .notFound && object(r)["error"] as? String == "unknown entity 'nope'")
            r = try await put("registros", "{not json")
            #expect(r.status == .badRequest && object(r)["error"] as? String == "the body must be a JSON object")
            r = try await put("registros", #"{"url": "upload:abc", "colour": 1}"#)
            #expect(r.status == .badRequest && object(r)["error"] as? String == "unknown field 'colour'")
            r = try await put("registros", #"{"url": "upload:abc", "mode": "upsert"}"#)
            #expect(r.status == .badRequest)
            r = try await put("registros", #"{"url": "upload:0123abcd"}"#)
            #expect(r.status == .badRequest && object(r)["error"] as? String == "upload '0123abcd' does not exist")
            for (url, why) in [("http://evil.example.org/x.csv", "host 'evil.example.org' is not on the allowlist"),
                               ("http://169.254.169.254/latest/meta-data", "host '169.254.169.254' is not on the allowlist"),
                               ("file:///etc/passwd", "file '/etc/passwd' is not under an allowed root"),
                               ("file://\(h.dir.path)/incoming/../../x.csv", "is not under an allowed root"),
                               ("http://user:pw@files.example.com/a.csv", "credentials in URLs are not accepted"),
                               ("gopher://files.example.com/", "unsupported URL scheme 'gopher'"),
                               ("upload:../../etc/passwd", "is not an upload id")] {
                r = try await put("registros", #"{"url": "\#(url)"}"#)
                #expect(r.status == .badRequest, "\(url)")
                #expect((object(r)["error"] as? String)?.contains(why) == true, "\(url): \(object(r))")
                #expect(!(object(r)["error"] as? String ?? "").contains("pw"))
            }
            // Over the body limit: by Content-Length, and while streaming.
            r = try await client.execute(uri: "/uploads", method: .post, headers: APIHarness.auth, body: body(String(repeating: "x", count: 2000)))
            #expect(r.status == .contentTooLarge)
            r = try await client.execute(uri: "/registros/_bulk/status/12", method: .get, headers: APIHarness.auth)
            #expect(r.status == .notFound)
            r = try await client.execute(uri: "/jobs?state=sleeping", method: .get, headers: APIHarness.auth)
            #expect(r.status == .badRequest)
        }
        // Nothing half-written was left behind by the refused upload.
        let left = (FileManager.default.enumerator(atPath: h.config.uploadDir)?.allObjects as? [String] ?? []).filter { $0.count > 2 }
        #expect(left.isEmpty)
    }

    @Test func traversalFileNamesAreStoredSafely() async throws {
        let h = try await APIHarness()
        try await h.app.test(.router) { client in
            for name in ["../../etc/x", "/etc/passwd", "a\u{1}b\tc.csv", "..\\..\\win.ini", "..", ""] {
                let (b, ct) = multipart([("file", name, "id\n1\n")])
                let r = try await client.execute(uri: "/bulk_upload", method: .post, headers: APIHarness.headers([(.contentType, ct)]), body: b)
                #expect(r.status == .ok, "\(name)")
                let o = object(r)
                let id = try #require(o["upload_id"] as? String)
                #expect(SourcePolicy.isUploadID(id))
                let stored = try #require(try await h.driver.upload(id: id))
                #expect(stored.path == h.config.uploadDir + "/" + id.prefix(2) + "/" + id)
                #expect(try String(contentsOfFile: stored.path, encoding: .utf8) == "id\n1\n")
                if let display = o["file_name"] as? String {
                    #expect(!display.contains("/") && !display.contains("\\") && !display.contains("\u{1}") && display != "..")
                }
            }
        }
        #expect(!FileManager.default.fileExists(atPath: h.dir.path + "/etc/x"))
    }

    @Test func submissionsIdempotencyListingAndCancel() async throws {
        let h = try await APIHarness()
        try await h.app.test(.router) { client in
            let csv = "id,v\n1,a\n2,b\n"
            var r = try await client.execute(uri: "/registros/_bulk?mode=append", method: .post,
                                             headers: APIHarness.headers([(.contentType, "text/csv"), (.idempotencyKey, "batch-42")]), body: body(csv))
            #expect(r.status == .accepted)
            let first = object(r)
            let id = try #require(first["id"] as? Int)
            #expect(first["state"] as? String == "queued" && first["status_url"] as? String == "/registros/_bulk/status/\(id)")
            #expect(r.headers[.location] == "/registros/_bulk/status/\(id)")
            r = try await client.execute(uri: "/registros/_bulk", method: .post,
                                         headers: APIHarness.headers([(.contentType, "text/csv"), (.idempotencyKey, "batch-42")]), body: body(csv))
            #expect(r.status == .accepted && object(r)["id"] as? Int == id && object(r)["idempotent_replay"] as? Bool == true)
            let job = try #require(try await h.driver.job(id: Int64(id)))
            #expect(job.spec.mode == .append && job.spec.format == .csv)
            // Upload first, then PUT by id.
            let (b, ct) = multipart([("file", "r.csv", csv)])
            r = try await client.execute(uri: "/uploads", method: .post, headers: APIHarness.headers([(.contentType, ct)]), body: b)
            #expect(r.status == .created)
            let upload = try #require(object(r)["upload_id"] as? String)
            #expect(object(r)["size"] as? Int == csv.utf8.count)
            r = try await client.execute(uri: "/registros/_bulk", method: .put, headers: APIHarness.auth,
                                         body: body(#"{"url": "upload:\#(upload)", "atomic": true, "max_rejects": 5, "priority": 3}"#))
            #expect(r.status == .accepted)
            let second = try #require(object(r)["id"] as? Int)
            let j2 = try #require(try await h.driver.job(id: Int64(second)))
            #expect(j2.spec.atomic && j2.spec.maxRejects == 5 && j2.priority == 3)
            // Extreme numbers are refused, never trapped on (abs(Int.min) used to crash the server).
            for extreme in ["-9223372036854775808", "9223372036854775807"] {
                r = try await client.execute(uri: "/registros/_bulk?priority=\(extreme)", method: .post,
                                             headers: APIHarness.headers([(.contentType, "text/csv")]), body: body(csv))
                #expect(r.status == .badRequest)
            }
            // List with keyset pagination.
            r = try await client.execute(uri: "/jobs?limit=1", method: .get, headers: APIHarness.auth)
            let page = object(r)
            #expect((page["jobs"] as? [Any])?.count == 1 && page["next"] as? Int == id)
            r = try await client.execute(uri: "/jobs?limit=1&after=\(id)", method: .get, headers: APIHarness.auth)
            #expect(((object(r)["jobs"] as? [[String: Any]])?.first?["id"] as? Int) == second)
            // Cancel a queued job; a second cancel conflicts.
            r = try await client.execute(uri: "/registros/_bulk/\(second)", method: .delete, headers: APIHarness.auth)
            #expect(r.status == .ok && object(r)["state"] as? String == "cancelled")
            r = try await client.execute(uri: "/registros/_bulk/\(second)", method: .delete, headers: APIHarness.auth)
            #expect(r.status == .conflict)
            r = try await client.execute(uri: "/registros/_bulk/\(second)/rejects", method: .get, headers: APIHarness.auth)
            #expect(r.status == .notFound)
        }
    }
}
