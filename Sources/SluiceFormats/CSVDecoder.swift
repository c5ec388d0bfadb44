public import SluiceCore

/// Streaming RFC 4180 CSV decoder that frames one record at a time.
///
/// Quoted fields may hold delimiters, doubled quotes and newlines; records end at LF,
/// CRLF or a bare CR; a UTF-8 BOM is skipped. Like PostgreSQL, an unquoted field equal
/// to the null token is NULL while a quoted one is text. A record longer than the limit
/// is reported (and skipped) rather than buffered; a quote left open at the end of the
/// file is a file-level error naming the line where it opened.
public final class CSVDecoder {
    /// The message of an unterminated quoted field (chunked loads recognise it to fall back).
    public static let unterminatedMessage = "a quoted field opened on this line is never closed"

    /// One field of the current record: a byte range in the window.
    struct Field {
        var start: Int
        var end: Int
        var quoted: Bool
        var needsUnescape: Bool
    }

    /// What ``next()`` found.
    public enum Event: Equatable {
        case record
        /// A record longer than the limit was skipped; its first line is ``line``.
        case tooLong(bytes: Int)
        case end
    }

    public let dialect: CSVDialect
    public let fileName: String?
    var source: any ByteChunkReader
    let window: ByteWindow
    var fields: [Field] = []
    var scratch: [UInt8] = []
    let nullToken: [UInt8]
    let maxRecordBytes: Int
    /// Lookup table: bytes that end an unquoted run (delimiter, quote, CR, LF).
    let special: [Bool]
    var bomChecked = false
    /// Whether an empty line is skipped. A reader of a one-column file turns this off:
    /// there an empty line is a row whose only value is NULL (as in PostgreSQL).
    public var skipBlankLines = true
    var nextLine: Int64 = 1
    /// First physical line (1-based) of the current record.
    public private(set) var line: Int64 = 0

    public init(source: any ByteChunkReader, dialect: CSVDialect = CSVDialect(), maxRecordBytes: Int = 16 << 20,
                readChunk: Int = 1 << 20, fileName: String? = nil, firstLine: Int64 = 1) {
        self.nextLine = firstLine
        self.source = source
        self.dialect = dialect
        self.fileName = fileName
        self.maxRecordBytes = maxRecordBytes
        self.window = ByteWindow(readChunk: min(readChunk, max(maxRecordBytes, 4096)))
        self.nullToken = Array(dialect.nullToken.utf8)
        var t = [Bool](repeating: false, count: 256)
        t[Int(dialect.delimiter)] = true
        t[Int(dialect.quote)] = true
        t[0x0A] = true
        t[0x0D] = true
        self.special = t
    }

    /// Bytes of the (decompressed) stream consumed so far.
    public var bytesConsumed: Int64 { window.consumedBefore }

    public var fieldCount: Int { fields.count }

    enum Scan {
        case complete(next: Int, newlines: Int)
        case incomplete
        case unterminated
        case empty
    }

    /// Frames the record starting at `p`. Field ranges land in `fields`.
    func scan(from p: Int, into fields: inout [Field]) -> Scan {
        fields.removeAll(keepingCapacity: true)
        let base = window.base
        let end = window.end
        let eof = window.eof
        let delim = dialect.delimiter
        let quote = dialect.quote
        var i = p
        var fieldStart = p
        var quoted = false
        var unescape = false
        var newlines = 0
        if p == end && eof { return .empty }
        return special.withUnsafeBufferPointer { special in
            while true {
                while i < end && !special[Int(base[i])] { i &+= 1 }
                if i == end {
                    if !eof { return .incomplete }
                    fields.append(Field(start: fieldStart, end: i, quoted: quoted, needsUnescape: unescape))
                    return .complete(next: i, newlines: newlines)
                }
                let c = base[i]
                if c == delim {
                    fields.append(Field(start: fieldStart, end: i, quoted: quoted, needsUnescape: unescape))
                    i &+= 1
                    fieldStart = i
                    quoted = false
                    unescape = false
                    continue
                }
                if c == 0x0A {
                    fields.append(Field(start: fieldStart, end: i, quoted: quoted, needsUnescape: unescape))
                    return .complete(next: i + 1, newlines: newlines)
                }
                if c == 0x0D {
                    if i + 1 == end && !eof { return .incomplete }
                    fields.append(Field(start: fieldStart, end: i, quoted: quoted, needsUnescape: unescape))
                    return .complete(next: i + 1 < end && base[i + 1] == 0x0A ? i + 2 : i + 1, newlines: newlines)
                }
                // A quote opens a quoted section only at the start of a field; elsewhere it
                // is an ordinary character (as Python's csv, pandas and Excel read it).
                if i != fieldStart {
                    i &+= 1
                    continue
                }
                quoted = true
                i &+= 1
                while true {
                    while i < end && base[i] != quote && base[i] != 0x0A { i &+= 1 }
                    if i == end { return eof ? .unterminated : .incomplete }
                    if base[i] == 0x0A { newlines += 1; i &+= 1; continue }
                    if i + 1 == end && !eof { return .incomplete }
                    if i + 1 < end && base[i + 1] == quote {
                        unescape = true
                        i &+= 2
                        continue
                    }
                    i &+= 1
                    break
                }
                // Text after the closing quote is kept ("ab"c reads as abc).
                if i < end {
                    let n = base[i]
                    if n != delim && n != 0x0A && n != 0x0D { unescape = true }
                }
            }
        }
    }

    /// Advances to the next record. Blank lines are skipped.
    public func next() throws(SluiceError) -> Event {
        while true {
            if !bomChecked {
                while window.available < 3 && !window.eof { _ = try fillWindow() }
                if window.available >= 3, window.base[window.start] == 0xEF, window.base[window.start + 1] == 0xBB, window.base[window.start + 2] == 0xBF {
                    window.consume(to: window.start + 3)
                }
                bomChecked = true
            }
            // Scan into a local array: one exclusive access per record, not one per field.
            var fs: [Field] = []
            swap(&fs, &fields)
            let result = scan(from: window.start, into: &fs)
            swap(&fs, &fields)
            switch result {
            case .complete(let next, let newlines):
                line = nextLine
                nextLine += Int64(1 + newlines)
                let length = next - window.start
                window.consume(to: next)
                if length > maxRecordBytes { return .tooLong(bytes: length) }
                let blank = fields.count == 1 && fields[0].start == fields[0].end && !fields[0].quoted
                if blank && skipBlankLines { continue }
                return .record
            case .empty:
                return .end
            case .unterminated:
                throw SluiceError(.unterminatedQuote, CSVDecoder.unterminatedMessage,
                                  at: SourceLocation(file: fileName, line: nextLine))
            case .incomplete:
                if window.available >= maxRecordBytes {
                    line = nextLine
                    let skipped = try skipLongRecord()
                    return .tooLong(bytes: skipped)
                }
                _ = try fillWindow()
            }
        }
    }

    func fillWindow() throws(SluiceError) -> Bool {
        do {
            return try window.fill(from: &source)
        } catch {
            throw error.inFile(fileName ?? "")
        }
    }

    /// Discards the rest of an over-long record, re-reading it from its start with the
    /// same quoting rules as ``scan(from:into:)`` but without keeping any bytes.
    func skipLongRecord() throws(SluiceError) -> Int {
        var atFieldStart = true
        var inQuote = false
        var quoteSeen = false  // a quote inside a quoted field: closing, or the first of a pair
        var newlines = 0
        var total = 0
        var pendingCR = false
        let quote = dialect.quote
        let delim = dialect.delimiter
        while true {
            let base = window.base
            var i = window.start
            let end = window.end
            while i < end {
                let c = base[i]
                if pendingCR {
                    window.consume(to: c == 0x0A ? i + 1 : i)
                    nextLine += Int64(1 + newlines)
                    return total
                }
                if inQuote {
                    if quoteSeen {
                        quoteSeen = false
                        if c != quote { inQuote = false; continue }  // re-examine c outside the quotes
                    } else if c == quote {
                        quoteSeen = true
                    } else if c == 0x0A {
                        newlines += 1
                    }
                } else if c == 0x0A {
                    window.consume(to: i + 1)
                    nextLine += Int64(1 + newlines)
                    return total + 1
                } else if c == 0x0D {
                    pendingCR = true
                } else if c == quote && atFieldStart {
                    inQuote = true
                }
                atFieldStart = !inQuote && c == delim
                i += 1
                total += 1
            }
            window.discardAll()
            if !(try fillWindow()) {
                if inQuote && !quoteSeen {
                    throw SluiceError(.unterminatedQuote, CSVDecoder.unterminatedMessage,
                                      at: SourceLocation(file: fileName, line: line))
                }
                nextLine += Int64(1 + newlines)
                return total
            }
        }
    }

    // MARK: Field access (valid until the next call to `next()`)

    public func isNull(_ i: Int) -> Bool { Self.isNull(fields[i], window.base, nullToken) }

    @inline(__always)
    static func isNull(_ f: Field, _ base: UnsafePointer<UInt8>, _ nullToken: [UInt8]) -> Bool {
        if f.quoted { return false }
        let n = f.end - f.start
        if n != nullToken.count { return false }
        if n == 0 { return true }
        for k in 0..<n where base[f.start + k] != nullToken[k] { return false }
        return true
    }

    /// Calls `body(column, content)` for each `mapping[column]` field of the current
    /// record, with nil content for NULL. The hot path of CSV loading.
    @inline(__always)
    public func forEachField(_ mapping: [Int], _ body: (Int, UnsafeRawBufferPointer?) -> Void) {
        let fs = fields
        let base = window.base
        let raw = UnsafeRawPointer(base)
        for c in mapping.indices {
            let f = fs[mapping[c]]
            if Self.isNull(f, base, nullToken) {
                body(c, nil)
            } else if !f.quoted {
                body(c, UnsafeRawBufferPointer(start: raw + f.start, count: f.end - f.start))
            } else if !f.needsUnescape {
                body(c, UnsafeRawBufferPointer(start: raw + f.start + 1, count: f.end - f.start - 2))
            } else {
                withField(mapping[c]) { body(c, $0) }
            }
        }
    }

    /// Calls `body` with the field's content (quotes removed, doubled quotes undone).
    @inline(__always)
    public func withField<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let f = fields[i]
        if !f.quoted { return try body(window.bytes(f.start, f.end)) }
        if !f.needsUnescape { return try body(window.bytes(f.start + 1, f.end - 1)) }
        scratch.removeAll(keepingCapacity: true)
        let base = window.base
        let quote = dialect.quote
        // The field starts with a quote (it is quoted); a doubled quote inside is one
        // quote, and the closing quote ends the quoted part.
        var inQuote = true
        var k = f.start + 1
        while k < f.end {
            let c = base[k]
            if inQuote && c == quote {
                if k + 1 < f.end && base[k + 1] == quote {
                    scratch.append(quote)
                    k += 2
                    continue
                }
                inQuote = false
            } else {
                scratch.append(c)
            }
            k += 1
        }
        return try scratch.withUnsafeBytes { try body($0) }
    }

    /// The current record's fields as strings (nil for NULL), for headers and rejects.
    public func fieldStrings() -> [String?] {
        (0..<fields.count).map { i in isNull(i) ? nil : withField(i) { String(decoding: $0, as: UTF8.self) } }
    }
}
