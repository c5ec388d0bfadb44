public import SluiceCore
#if canImport(Glibc)
import Glibc
#endif

/// Cuts a JSON byte stream into records without parsing them: one per line (NDJSON), one
/// per element of a top-level array, or one per value of a whitespace-separated sequence
/// (pretty-printed objects one after another). Bounded by the record-length limit.
public final class JSONFramer {
    public enum Layout: Sendable, Equatable {
        case lines
        case array
        case sequence
        /// Decide from the first bytes: `[` → array, else lines if the first line is a
        /// whole value, else sequence.
        case detect
    }

    public enum Event: Equatable {
        /// A record spans `range` in the window; valid until the next call.
        case record
        case tooLong(bytes: Int)
        case end
    }

    var source: any ByteChunkReader
    let window: ByteWindow
    public private(set) var layout: Layout
    let maxRecordBytes: Int
    let fileName: String?
    var started = false
    var arrayClosed = false
    var nextLine: Int64 = 1
    public private(set) var line: Int64 = 0
    var recordStart = 0
    var recordEnd = 0

    public init(source: any ByteChunkReader, layout: Layout = .detect, maxRecordBytes: Int = 16 << 20,
                readChunk: Int = 1 << 20, fileName: String? = nil, firstLine: Int64 = 1) {
        self.nextLine = firstLine
        self.source = source
        self.layout = layout
        self.maxRecordBytes = maxRecordBytes
        self.window = ByteWindow(readChunk: min(readChunk, max(maxRecordBytes, 4096)))
        self.fileName = fileName
    }

    public var bytesConsumed: Int64 { window.consumedBefore }

    /// The current record's bytes (valid until the next call to ``next()``).
    public var record: UnsafeRawBufferPointer { window.bytes(recordStart, recordEnd) }

    func error(_ message: String) -> SluiceError {
        SluiceError(.malformedFile, message, at: SourceLocation(file: fileName, line: nextLine))
    }

    func fill() throws(SluiceError) -> Bool {
        do { return try window.fill(from: &source) } catch { throw error.inFile(fileName ?? "") }
    }

    /// Skips whitespace (counting lines); returns false at the end of input.
    func skipSpace(alsoCommas: Bool = false) throws(SluiceError) -> Bool {
        while true {
            let base = window.base
            var i = window.start
            while i < window.end {
                let c = base[i]
                if c == 0x0A { nextLine += 1 } else if !(c == 0x20 || c == 0x09 || c == 0x0D || (alsoCommas && c == UInt8(ascii: ","))) { break }
                i += 1
            }
            window.consume(to: i)
            if i < window.end { return true }
            if !(try fill()) { return false }
        }
    }

    public func next() throws(SluiceError) -> Event {
        if !started {
            started = true
            if layout == .detect || layout == .array {
                guard try skipSpace() else { return .end }
                if window.base[window.start] == UInt8(ascii: "[") {
                    layout = .array
                    window.consume(to: window.start + 1)
                } else if layout == .detect {
                    layout = try firstLineIsWholeValue() ? .lines : .sequence
                } else {
                    throw error("expected a JSON array ('[')")
                }
            }
        }
        switch layout {
        case .lines: return try nextLine_()
        case .array, .sequence: return try nextValue()
        case .detect: return .end
        }
    }

    /// For detection: whether the first line holds one complete JSON value.
    func firstLineIsWholeValue() throws(SluiceError) -> Bool {
        while true {
            let base = window.base
            var i = window.start
            i = Self.newline(base, from: i, to: window.end)
            if i < window.end || window.eof {
                return (try? JSONParser.parse(window.bytes(window.start, i))) != nil
            }
            if window.available >= maxRecordBytes { return false }
            if !(try fill()) { continue }
        }
    }

    func nextLine_() throws(SluiceError) -> Event {
        while true {
            let base = window.base
            var i = window.start
            i = Self.newline(base, from: i, to: window.end)
            if i == window.end && !window.eof {
                if window.available >= maxRecordBytes {
                    line = nextLine
                    return .tooLong(bytes: try skipToNewline())
                }
                _ = try fill()
                continue
            }
            if window.available == 0 && window.eof { return .end }
            line = nextLine
            nextLine += 1
            var end = i
            if end > window.start && base[end - 1] == 0x0D { end -= 1 }
            recordStart = window.start
            recordEnd = end
            window.consume(to: min(i + 1, window.end))
            if recordEnd - recordStart > maxRecordBytes { return .tooLong(bytes: recordEnd - recordStart) }
            // Blank lines are skipped.
            var k = recordStart
            while k < recordEnd, base[k] == 0x20 || base[k] == 0x09 { k += 1 }
            if k == recordEnd { continue }
            return .record
        }
    }

    /// The first line feed in `from..<to`, or `to` (memchr: a line is read at memory speed).
    @inline(__always) static func newline(_ base: UnsafePointer<UInt8>, from: Int, to: Int) -> Int {
        guard from < to, let hit = memchr(base + from, 0x0A, to - from) else { return to }
        return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
    }

    func skipToNewline() throws(SluiceError) -> Int {
        var total = 0
        while true {
            let base = window.base
            var i = window.start
            i = Self.newline(base, from: i, to: window.end)
            total += i - window.start
            if i < window.end {
                window.consume(to: i + 1)
                nextLine += 1
                return total
            }
            window.discardAll()
            if !(try fill()) { nextLine += 1; return total }
        }
    }

    func nextValue() throws(SluiceError) -> Event {
        if arrayClosed {
            if try skipSpace() { throw error("unexpected text after the closing ']'") }
            return .end
        }
        guard try skipSpace(alsoCommas: layout == .array) else {
            if layout == .array { throw error("the JSON array is not closed (missing ']')") }
            return .end
        }
        if layout == .array && window.base[window.start] == UInt8(ascii: "]") {
            window.consume(to: window.start + 1)
            arrayClosed = true
            return try nextValue()
        }
        line = nextLine
        while true {
            switch scanValue() {
            case .complete(let end, let newlines):
                recordStart = window.start
                recordEnd = end
                nextLine += Int64(newlines)
                window.consume(to: end)
                if end - recordStart > maxRecordBytes { return .tooLong(bytes: end - recordStart) }
                return .record
            case .incomplete:
                if window.available >= maxRecordBytes {
                    throw SluiceError(.recordTooLong, "a JSON value is longer than the limit of \(maxRecordBytes) bytes",
                                      at: SourceLocation(file: fileName, line: line))
                }
                if !(try fill()) {
                    // At EOF: whatever is left is one (broken) record for the parser to reject.
                    if window.available > 0 {
                        var newlines = 0
                        for k in window.start..<window.end where window.base[k] == 0x0A { newlines += 1 }
                        recordStart = window.start
                        recordEnd = window.end
                        nextLine += Int64(newlines)
                        window.consume(to: window.end)
                        if layout == .array { arrayClosed = true }
                        return .record
                    }
                    return .end
                }
            }
        }
    }

    enum Scan { case complete(end: Int, newlines: Int), incomplete }

    /// Finds where the value at `window.start` ends, tracking strings and nesting.
    func scanValue() -> Scan {
        let base = window.base
        var i = window.start
        let end = window.end
        var depth = 0
        var newlines = 0
        var inString = false
        while i < end {
            let c = base[i]
            if inString {
                if c == UInt8(ascii: "\\") { i += 2; continue }
                if c == UInt8(ascii: "\"") { inString = false; if depth == 0 { return .complete(end: i + 1, newlines: newlines) } }
                if c == 0x0A { newlines += 1 }
                i += 1
                continue
            }
            switch c {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if depth == 0 { return .complete(end: i, newlines: newlines) }  // the array's own ']'
                depth -= 1
                if depth == 0 { return .complete(end: i + 1, newlines: newlines) }
            case UInt8(ascii: ","), 0x20, 0x09, 0x0D, 0x0A:
                if depth == 0 { return .complete(end: i, newlines: newlines) }
                if c == 0x0A { newlines += 1 }
            default: break
            }
            i += 1
        }
        return .incomplete
    }
}
