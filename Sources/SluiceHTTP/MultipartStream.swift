import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A streaming `multipart/form-data` parser (RFC 7578 / RFC 2046) that finds boundaries
/// with `memmem` instead of stepping byte by byte, and hands body bytes over as slices of
/// the input without copying them (except a delimiter-length tail kept between chunks).
struct MultipartStream {
    enum Event {
        /// A part starts; its headers (names lowercased).
        case headers([String: String])
        /// Bytes of the current part's body (valid only during the callback).
        case body(UnsafeRawBufferPointer)
        case partEnd
    }

    enum ParseError: Error { case malformed(String) }

    enum State { case preamble, afterBoundary, headers, body, done }

    let delimiter: [UInt8]  // "\r\n--" + boundary
    var state = State.preamble
    var pending: [UInt8] = []
    static let maxHeaderBytes = 16 << 10

    init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
        // The first boundary may start the body without a preceding CRLF.
        pending = [0x0D, 0x0A]
    }

    var finished: Bool { state == .done }

    /// Feeds a chunk; calls `emit` for every event it completes.
    mutating func feed(_ chunk: UnsafeRawBufferPointer, _ emit: (Event) throws -> Void) throws {
        // Fast path: in a body with nothing pending, scan the chunk in place.
        if state == .body && pending.isEmpty {
            try scanBody(chunk, emit)
            return
        }
        pending.append(contentsOf: chunk)
        var buf: [UInt8] = []
        swap(&buf, &pending)
        try buf.withUnsafeBytes { try process($0, emit) }
    }

    /// Processes `b` from the start, leaving unconsumed bytes in `pending`.
    mutating func process(_ b: UnsafeRawBufferPointer, _ emit: (Event) throws -> Void) throws {
        var i = 0
        while i < b.count {
            switch state {
            case .done:
                return  // an epilogue after the closing boundary is ignored
            case .preamble:
                guard let at = find(delimiter, in: b, from: i) else {
                    // Keep a tail that could be the start of the delimiter.
                    keep(b, from: max(i, b.count - delimiter.count + 1))
                    return
                }
                i = at + delimiter.count
                state = .afterBoundary
            case .afterBoundary:
                guard b.count - i >= 2 else { keep(b, from: i); return }
                if b[i] == UInt8(ascii: "-") && b[i + 1] == UInt8(ascii: "-") { state = .done; return }
                // Transport padding (spaces/tabs) may follow the boundary before its CRLF.
                var j = i
                while j < b.count && (b[j] == 0x20 || b[j] == 0x09) { j += 1 }
                guard b.count - j >= 2 else { keep(b, from: i); return }
                guard b[j] == 0x0D && b[j + 1] == 0x0A else { throw ParseError.malformed("expected CRLF after a boundary") }
                i = j + 2
                state = .headers
            case .headers:
                guard let end = find([0x0D, 0x0A, 0x0D, 0x0A], in: b, from: i) else {
                    // A part with no headers at all starts with the blank line directly.
                    if b.count - i >= 2 && b[i] == 0x0D && b[i + 1] == 0x0A { i += 2; try emit(.headers([:])); state = .body; continue }
                    if b.count - i > Self.maxHeaderBytes { throw ParseError.malformed("part headers are too long") }
                    keep(b, from: i)
                    return
                }
                try emit(.headers(Self.parseHeaders(UnsafeRawBufferPointer(rebasing: b[i..<end]))))
                i = end + 4
                state = .body
            case .body:
                try scanBody(UnsafeRawBufferPointer(rebasing: b[i...]), emit)
                return
            }
        }
    }

    /// In a body: emits data up to the next delimiter, then continues after it.
    mutating func scanBody(_ b: UnsafeRawBufferPointer, _ emit: (Event) throws -> Void) throws {
        if let at = find(delimiter, in: b, from: 0) {
            if at > 0 { try emit(.body(UnsafeRawBufferPointer(rebasing: b[0..<at]))) }
            try emit(.partEnd)
            state = .afterBoundary
            try process(UnsafeRawBufferPointer(rebasing: b[(at + delimiter.count)...]), emit)
            return
        }
        // No delimiter: everything but a possible delimiter prefix at the end is body.
        let safe = max(0, b.count - (delimiter.count - 1))
        var cut = safe
        // Only keep the tail if it could really start a delimiter (it must contain a CR).
        if let cr = lastCR(b, from: safe) { cut = cr } else { cut = b.count }
        if cut > 0 { try emit(.body(UnsafeRawBufferPointer(rebasing: b[0..<cut]))) }
        keep(b, from: cut)
    }

    func lastCR(_ b: UnsafeRawBufferPointer, from: Int) -> Int? {
        var k = from
        while k < b.count {
            if b[k] == 0x0D, delimiter.starts(with: b[k...].prefix(delimiter.count)) { return k }
            k += 1
        }
        return nil
    }

    mutating func keep(_ b: UnsafeRawBufferPointer, from: Int) {
        pending.removeAll(keepingCapacity: true)
        if from < b.count { pending.append(contentsOf: b[from...]) }
    }

    /// First index of `needle` in `b` at or after `from`: `memchr` for its first byte, then `memcmp`.
    func find(_ needle: [UInt8], in b: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard b.count - from >= needle.count, let base = b.baseAddress else { return nil }
        return needle.withUnsafeBytes { n -> Int? in
            var p = from
            while b.count - p >= needle.count {
                guard let hit = memchr(base + p, Int32(needle[0]), b.count - p - needle.count + 1) else { return nil }
                let at = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(hit, n.baseAddress!, needle.count) == 0 { return at }
                p = at + 1
            }
            return nil
        }
    }

    static func parseHeaders(_ b: UnsafeRawBufferPointer) -> [String: String] {
        var out: [String: String] = [:]
        for line in String(decoding: b, as: UTF8.self).split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }
}
