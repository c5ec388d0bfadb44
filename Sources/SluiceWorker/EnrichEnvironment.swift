public import SluiceCore
public import SluiceLoad
public import SluiceQueue
public import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// `enrich` steps served by the control plane (cache, shared rate limit) and HTTP.
public struct QueueEnrichEnvironment: EnrichEnvironment {
    let driver: any EnrichStore

    public init(driver: any EnrichStore) { self.driver = driver }

    static let client: HTTPClient = {
        var c = HTTPClient.Configuration()
        c.timeout = .init(connect: .seconds(10), read: .seconds(60))
        c.connectionPool.retryConnectionEstablishment = false
        c.redirectConfiguration = .follow(max: 3, allowCycles: false)
        // Enough connections for an enrich step's concurrency (the default is 8 per host).
        c.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: c)
    }()

    public func get(_ url: String, timeout: Double) async -> EnrichAnswer {
        do {
            var r = HTTPClientRequest(url: url)
            r.headers.add(name: "User-Agent", value: "sluice/0.1.0")
            r.headers.add(name: "Accept", value: "application/json")
            let response = try await Self.client.execute(r, timeout: .milliseconds(Int64(timeout * 1000)))
            var body = try await response.body.collect(upTo: 8 << 20)
            return .answered(status: Int(response.status.code), body: body.readBytes(length: body.readableBytes) ?? [],
                             retryAfter: response.headers.first(name: "Retry-After"))
        } catch {
            return .failed("\(error)")
        }
    }

    public func cached(namespace: String, keys: [String], now: Date) async throws(SluiceError) -> [String: String] {
        var out: [String: String] = [:]
        var at = 0
        while at < keys.count {
            out.merge(try await driver.cachedAnswers(namespace: namespace, keys: Array(keys[at..<min(keys.count, at + 1000)]), now: now)) { $1 }
            at += 1000
        }
        return out
    }

    public func cache(namespace: String, entries: [String: String], expiresAt: Date) async throws(SluiceError) {
        try await driver.cacheAnswers(namespace: namespace, entries: entries, expiresAt: expiresAt)
    }

    public func takeTokens(bucket: String, rate: Double, burst: Double, count: Int, now: Date?) async throws(SluiceError) -> (granted: Int, wait: Double) {
        try await driver.takeTokens(bucket: bucket, rate: rate, burst: burst, count: count, now: now)
    }

    public func claimLookups(namespace: String, keys: [String], holder: String, until: Date, now: Date) async throws(SluiceError) -> Set<String> {
        try await driver.claimLookups(namespace: namespace, keys: keys, holder: holder, until: until, now: now)
    }

    public func releaseLookups(namespace: String, keys: [String], holder: String) async throws(SluiceError) {
        try await driver.releaseLookups(namespace: namespace, keys: keys, holder: holder)
    }
}
