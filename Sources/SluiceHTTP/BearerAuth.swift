import Hummingbird
import Crypto
import Foundation

/// Requires `Authorization: Bearer <token>` matching one of the configured tokens.
/// Tokens are compared as SHA-256 digests in constant time, so neither the content nor
/// the length of a secret leaks through timing.
struct BearerAuth<Context: RequestContext>: RouterMiddleware {
    let digests: [[UInt8]]

    init(tokens: [String]) {
        digests = tokens.map { Array(SHA256.hash(data: Data($0.utf8))) }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix.lowercased() else {
            throw APIError(.unauthorized, "missing bearer token", headers: [.wwwAuthenticate: "Bearer"])
        }
        let given = Array(SHA256.hash(data: Data(header.dropFirst(prefix.count).utf8)))
        var ok = false
        for d in digests where Self.constantTimeEqual(d, given) { ok = true }
        guard ok else { throw APIError(.unauthorized, "invalid bearer token", headers: [.wwwAuthenticate: "Bearer"]) }
        return try await next(request, context)
    }
}
