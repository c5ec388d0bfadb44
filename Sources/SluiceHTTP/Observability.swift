public import Hummingbird
import HTTPTypes
public import Logging
import Metrics
public import Prometheus
public import SluiceQueue
import Foundation
import Synchronization

/// `GET /metrics` in Prometheus' text format: what this process recorded through swift-metrics
/// (jobs run, rows, HTTP requests, exports, enrich, watches), plus what is read at each scrape:
/// jobs by state, kind and entity from the control plane, and the process's memory.
public final class MetricsEndpoint: Sendable {
    /// The process's one registry, installed as swift-metrics' backend on first use.
    public static let registry: PrometheusCollectorRegistry = {
        let r = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: r))
        return r
    }()

    let driver: (any QueueDriver)?
    /// Job gauges already made, so a state that empties reads 0 instead of vanishing.
    let jobGauges = Mutex<[JobKey: Prometheus.Gauge]>([:])
    let started = Date()

    struct JobKey: Hashable {
        var state: String, kind: String, entity: String
    }

    /// Installs the registry (if not yet) and reads job counts from `driver` at each scrape.
    public init(driver: (any QueueDriver)?) {
        _ = Self.registry
        self.driver = driver
    }

    /// The text a scrape returns.
    public func scrape() async -> [UInt8] {
        let r = Self.registry
        if let driver, let counts = try? await driver.jobCounts() {
            jobGauges.withLock { gauges in
                var now: [JobKey: Int] = [:]
                for c in counts { now[JobKey(state: c.state.rawValue, kind: c.kind, entity: c.entity), default: 0] += c.count }
                for key in Set(gauges.keys).union(now.keys) {
                    let g = gauges[key] ?? r.makeGauge(name: "sluice_jobs", labels: [("state", key.state), ("kind", key.kind), ("entity", key.entity)],
                                                       help: "Jobs in the control plane by state, kind and entity")
                    gauges[key] = g
                    g.set(Double(now[key] ?? 0))
                }
            }
        }
        r.makeGauge(name: "process_resident_memory_bytes", help: "Resident memory of this process").set(Double(Self.residentBytes()))
        r.makeGauge(name: "process_start_time_seconds", help: "When this process started (Unix time)").set(started.timeIntervalSince1970)
        var out: [UInt8] = []
        r.emit(into: &out)
        return out
    }

    /// The routes: `/metrics` (and nothing else) on `router`.
    public func add<Context: RequestContext>(to router: some RouterMethods<Context>) {
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: await self.scrape())))
        }
    }

    /// Resident set size from /proc (0 where there is none).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// A server of its own for processes without the API (`sluice worker`, `sluice watch`):
    /// `/metrics` and `/healthz` on `host:port`.
    public func application(host: String, port: Int, logger: Logger) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.get("/healthz") { _, _ in try json(["status": "ok"]) }
        add(to: router)
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "sluice"), logger: logger)
    }
}

/// The HTTP metrics' handles per method, route and status, made once each: a request then
/// only counts, instead of asking the metrics backend for its series (a lookup under the
/// registry's lock and a new handle) twice.
final class RequestMetrics: Sendable {
    struct Key: Hashable {
        var method: String, route: String, status: Int
    }
    let made = Mutex<[Key: (Metrics.Counter, Metrics.Timer)]>([:])

    func handles(method: String, route: String, status: Int) -> (Metrics.Counter, Metrics.Timer) {
        let key = Key(method: method, route: route, status: status)
        return made.withLock { made in
            if let h = made[key] { return h }
            let h = (Metrics.Counter(label: "sluice_http_requests_total", dimensions: [("method", method), ("route", route), ("status", String(status))]),
                     Metrics.Timer(label: "sluice_http_request_duration_seconds", dimensions: [("method", method), ("route", route)]))
            made[key] = h
            return h
        }
    }
}
