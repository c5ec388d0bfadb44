import Testing
import Foundation
@testable import SluiceExport
import SluiceCore

@Suite struct DeliveryPolicyTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func successesRetriesAndRefusals() {
        let p = DeliveryPolicy(maxAttempts: 4, baseDelay: 1, maxDelay: 10)
        #expect(p.decide(.answered(status: 200, retryAfter: nil), attempt: 1, random: 0.5, now: now) == .delivered)
        #expect(p.decide(.answered(status: 204, retryAfter: nil), attempt: 9, random: 0.5, now: now) == .delivered)
        for status in [500, 502, 503, 408, 429] {
            #expect(p.decide(.answered(status: status, retryAfter: nil), attempt: 1, random: 0.5, now: now) == .retry(after: 0.5))
        }
        #expect(p.decide(.transportError("reset"), attempt: 3, random: 0.99, now: now) == .retry(after: 3.96))
        for status in [400, 401, 403, 404, 409, 413, 422] {
            guard case .deadLetter = p.decide(.answered(status: status, retryAfter: nil), attempt: 1, random: 0.5, now: now) else {
                Issue.record("\(status) must not be retried"); continue
            }
        }
        #expect(p.decide(.answered(status: 503, retryAfter: nil), attempt: 4, random: 0.5, now: now) == .deadLetter(reason: "the receiver answered 503 (4 attempts)"))
    }

    @Test func backoffIsCappedAndJittered() {
        let p = DeliveryPolicy(maxAttempts: 50, baseDelay: 0.5, maxDelay: 8)
        for attempt in 1...20 {
            guard case .retry(let hi) = p.decide(.transportError("x"), attempt: attempt, random: 0.999_999, now: now),
                  case .retry(let lo) = p.decide(.transportError("x"), attempt: attempt, random: 0, now: now) else { Issue.record("no retry"); return }
            #expect(lo == 0)
            #expect(hi <= 8 && hi <= 0.5 * pow(2, Double(attempt - 1)))
        }
    }

    @Test func retryAfterIsHonoured() {
        let p = DeliveryPolicy(maxAttempts: 5, baseDelay: 0.1, maxDelay: 1)
        #expect(p.decide(.answered(status: 429, retryAfter: "3"), attempt: 1, random: 0, now: now) == .retry(after: 3))
        #expect(DeliveryPolicy.retryAfter("Fri, 15 Jan 2027 08:00:05 GMT", now: now) == 5)
        #expect(DeliveryPolicy.retryAfter("Fri, 15 Jan 2027 07:00:00 GMT", now: now) == 0)
        #expect(DeliveryPolicy.retryAfter("soon", now: now) == nil)
    }

    @Test func rateLimiterPaces() {
        var r = RateLimiter(rate: 10, burst: 2, now: 0)
        #expect(r.take(now: 0) == 0)
        #expect(r.take(now: 0) == 0)
        #expect(abs(r.take(now: 0) - 0.1) < 1e-9)
        var s = RateLimiter(rate: 10, burst: 2, now: 0)
        _ = s.take(2, now: 0)
        #expect(s.take(now: 1) == 0)  // a second refills (up to the burst)
    }
}
