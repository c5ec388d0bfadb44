public import Hummingbird
public import SluiceConfig
public import SluiceQueue
public import SluiceStorage
import SluiceCore
public import Foundation
import HTTPTypes
public import HummingbirdCore
public import Logging

/// What the API needs: configuration, the queue, the source policy, and a way to wake
/// in-process workers when a job is submitted.
public struct APIDependencies: Sendable {
    public var config: SluiceConfig
    public var driver: any QueueDriver
    public var policy: SourcePolicy
    /// Poked after each submission so that workers in this process start at once.
    public var wake: WakeSignal?
    /// Accepted bearer tokens; empty means no authentication (loopback only, see `sluice serve`).
    public var tokens: [String]
    public var now: @Sendable () -> Date
    /// The export ledger `GET /exports` reads (the backend's; the route answers 404 without one).
    public var exports: (any ExportStore)?
    /// Starts a run of a declared pipeline over one uploaded file, in the background; returns
    /// the run's id (`POST /pipelines/{name}/runs`). Nil: the route answers 404.
    public var runPipeline: (@Sendable (_ pipeline: String, _ upload: Upload) async throws -> Int64)?
    /// Starts a run of a declared pipeline over its own source, in the background (the
    /// console's "Run now", and its backfill: only files modified in `from..<to`); returns
    /// the run's id. Nil: no button.
    public var runNow: (@Sendable (_ pipeline: String, _ from: Date?, _ to: Date?) async throws -> Int64)?
    /// `GET /metrics` (behind the same tokens as the API); nil: not served.
    public var metrics: MetricsEndpoint?
    /// Where the access log goes (one line per request); nil: no access log.
    public var accessLog: Logger?
    /// A span per request (continuing a `traceparent` the client sent); off, no tracing cost.
    public var tracing = false

    public init(config: SluiceConfig, driver: any QueueDriver, policy: SourcePolicy, wake: WakeSignal?, tokens: [String],
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.config = config
        self.driver = driver
        self.policy = policy
        self.wake = wake
        self.tokens = tokens
        self.now = now
    }
}

/// The bulk-ingest HTTP API. Routes only turn requests into validated jobs and answers;
/// loading is the workers' business.
public enum SluiceAPI {
    /// Every route as `METHOD /path` in OpenAPI form; a test checks it against `openapi.yaml`.
    public static let routes: [String] = [
        "GET /healthz", "GET /readyz", "GET /openapi.yaml",
        "POST /uploads", "POST /bulk_upload", "GET /jobs", "GET /exports",
        "PUT /{entity}/_bulk", "POST /{entity}/_bulk", "GET /{entity}/_bulk/status/{id}",
        "GET /{entity}/_bulk/{id}/rejects", "DELETE /{entity}/_bulk/{id}",
        "POST /pipelines/{name}/runs", "GET /pipelines/{name}/runs", "GET /metrics",
    ]

    /// The OpenAPI description served at `/openapi.yaml`.
    public static var openAPIText: String {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
              let text = try? String(contentsOf: url, encoding: .utf8) else { return "" }
        return text
    }

    public static func router(_ deps: APIDependencies) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestTelemetry<BasicRequestContext>(logger: deps.accessLog, tracing: deps.tracing))
        let bulk = BulkController(deps: deps)
        Console(deps: deps).add(to: router)
        router.get("/healthz") { _, _ in try json(["status": "ok"]) }
        router.get("/readyz") { _, _ in
            do {
                try await deps.driver.ping()
                return try json(["status": "ready"])
            } catch {
                throw APIError(.serviceUnavailable, "the control plane does not answer: \((error as? SluiceError)?.message ?? "\(error)")")
            }
        }
        let spec = openAPIText
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: spec)))
        }
        let api = router.group()
        if !deps.tokens.isEmpty { api.add(middleware: BearerAuth<BasicRequestContext>(tokens: deps.tokens)) }
        deps.metrics?.add(to: api)
        api.post("/uploads") { req, ctx in try await bulk.upload(req, ctx) }
        api.post("/bulk_upload") { req, ctx in try await bulk.bulkUpload(req, ctx) }
        api.get("/jobs") { req, ctx in try await bulk.list(req, ctx) }
        api.get("/exports") { req, _ in try await exportStatus(deps, to: req.uri.queryParameters["to"].map(String.init)) }
        api.post("/pipelines/:name/runs") { req, ctx in try await bulk.runPipeline(req, ctx) }
        api.get("/pipelines/:name/runs") { req, ctx in try await bulk.pipelineRuns(req, ctx) }
        api.put("/:entity/_bulk") { req, ctx in try await bulk.submitURL(req, ctx) }
        api.post("/:entity/_bulk") { req, ctx in try await bulk.submitBody(req, ctx) }
        api.get("/:entity/_bulk/status/:id") { req, ctx in try await bulk.status(req, ctx) }
        api.get("/:entity/_bulk/:id/rejects") { req, ctx in try await bulk.rejects(req, ctx) }
        api.delete("/:entity/_bulk/:id") { req, ctx in try await bulk.cancel(req, ctx) }
        return router
    }

    /// `GET /exports[?to=URL]`: per receiver, delivered / pending / dead-lettered batches and
    /// rows, and every batch not yet delivered with what the receiver last said.
    static func exportStatus(_ deps: APIDependencies, to: String?) async throws -> Response {
        guard let store = deps.exports else { throw APIError(.notFound, "no export ledger is open") }
        let batches = try await store.batches(to)
        let out = DestinationSummary.of(batches)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try enc.encode(["destinations": out]))))
    }

    /// Removes uploads left half-written by a server that died mid-upload (run at start).
    public static func sweepPartialUploads(in dir: String) -> (files: Int, bytes: Int64) { UploadStore.sweepPartials(dir: dir) }

    /// The HTTP/1 server setup: the `Expect: 100-continue` answer (refused when the declared
    /// body is over `maxBodyBytes`) and the connection guard (timeouts, body rate, the cap
    /// with a reserve for health checks, draining after an early answer).
    /// What `sluice serve` answers while its database cannot be reached: alive (`/healthz`),
    /// not ready (`/readyz`, with `reason()`), and every other route 503 with the same reason.
    public static func waitingRouter(reason: @escaping @Sendable () -> String) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/healthz") { _, _ in try json(["status": "ok"]) }
        router.get("/readyz") { _, _ -> Response in throw APIError(.serviceUnavailable, "waiting for the database: \(reason())") }
        router.addMiddleware { WaitingMiddleware(reason: reason) }
        return router
    }

    public static func server(limits: ConnectionLimits = ConnectionLimits(), maxBodyBytes: Int64 = .max) -> HTTPServerBuilder {
        let registry = ConnectionRegistry(limits: limits)
        return .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler(maxBodyBytes: maxBodyBytes),
                                                                       ConnectionGuardHandler(registry: registry)]))
    }
}

/// Answers 503 for every route but the health checks while the database is away.
struct WaitingMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let reason: @Sendable () -> String
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if ["/healthz", "/readyz"].contains(request.uri.path) { return try await next(request, context) }
        throw APIError(.serviceUnavailable, "not ready: waiting for the database: \(reason())")
    }
}
