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

    /// Whether `token` is one of the configured tokens.
    func accepts(_ token: String) -> Bool {
        let given = Array(SHA256.hash(data: Data(token.utf8)))
        var ok = false
        for d in digests where Self.constantTimeEqual(d, given) { ok = true }
        return ok
    }

    /// The token in the console's session cookie, if the request carries one.
    static func sessionCookie(_ request: Request) -> String? {
        guard let c = request.headers[.cookie] else { return nil }
        for part in c.split(separator: ";") {
            let kv = part.trimmingCharacters(in: .whitespaces)
            if kv.hasPrefix(Console.cookie + "=") { return String(kv.dropFirst(Console.cookie.count + 1)).removingPercentEncoding }
        }
        return nil
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // A console session (its HttpOnly, SameSite=Strict cookie) may read: the rejects and
        // metrics links of its pages. Changes still need the header.
        if request.method == .get || request.method == .head, let token = Self.sessionCookie(request), accepts(token) {
            return try await next(request, context)
        }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix.lowercased() else {
            throw APIError(.unauthorized, "missing bearer token", headers: [.wwwAuthenticate: "Bearer"])
        }
        guard accepts(String(header.dropFirst(prefix.count))) else { throw APIError(.unauthorized, "invalid bearer token", headers: [.wwwAuthenticate: "Bearer"]) }
        return try await next(request, context)
    }
}
