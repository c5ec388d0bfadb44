/// Where in an input something happened: file, 1-based line, column name, and the
/// offending value (truncated). Only the offending field is ever quoted, never the row.
public struct SourceLocation: Sendable, Hashable {
    public var file: String?
    public var line: Int64?
    public var column: String?
    public var value: String?

    public init(file: String? = nil, line: Int64? = nil, column: String? = nil, value: String? = nil) {
        self.file = file
        self.line = line
        self.column = column
        self.value = value.map(SourceLocation.excerpt)
    }

    /// Values are cut to 64 characters so a huge field cannot flood a log or an error column.
    public static func excerpt(_ s: String) -> String {
        s.count <= 64 ? s : String(s.prefix(61)) + "..."
    }

    /// `file:line: column 'c'` in whatever parts are known.
    public var prefix: String {
        var parts: [String] = []
        var head = file ?? ""
        if let line { head += head.isEmpty ? "line \(line)" : ":\(line)" }
        if !head.isEmpty { parts.append(head) }
        if let column { parts.append("column '\(column)'") }
        return parts.joined(separator: ": ")
    }
}

/// The error type of Sluice: a stable ``Code`` (what kind of failure, and whether a retry
/// can help), a one-line message, and where in the input it happened.
///
/// New codes can be added without breaking callers: ``Code`` is a struct, not an enum.
public struct SluiceError: Error, Sendable {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case invalidInput, invalidSchema, invalidIdentifier, invalidConfig, invalidArgument
            case unterminatedQuote, recordTooLong, malformedFile
            case io, database, constraint, aborted, tooManyRejects, unsupported, notFound, refused, unavailable
        }
        private let base: Base
        private init(_ b: Base) { base = b }

        /// A value that does not fit its column (bad number, date, UTF-8...).
        public static let invalidInput = Code(.invalidInput)
        public static let invalidSchema = Code(.invalidSchema)
        public static let invalidIdentifier = Code(.invalidIdentifier)
        public static let invalidConfig = Code(.invalidConfig)
        public static let invalidArgument = Code(.invalidArgument)
        /// A quoted CSV field runs to the end of the file.
        public static let unterminatedQuote = Code(.unterminatedQuote)
        public static let recordTooLong = Code(.recordTooLong)
        /// The file cannot be read as its format at all (bad gzip, broken JSON framing...).
        public static let malformedFile = Code(.malformedFile)
        public static let io = Code(.io)
        public static let database = Code(.database)
        public static let constraint = Code(.constraint)
        /// The load was cancelled or interrupted.
        public static let aborted = Code(.aborted)
        public static let tooManyRejects = Code(.tooManyRejects)
        public static let unsupported = Code(.unsupported)
        public static let notFound = Code(.notFound)
        /// A policy said no (a URL outside the allowlist, a path outside the roots).
        public static let refused = Code(.refused)
        /// A peer is unreachable or answered with a server error; trying later may work.
        public static let unavailable = Code(.unavailable)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    public var location: SourceLocation?

    public init(_ code: Code, _ message: String, at location: SourceLocation? = nil) {
        self.code = code
        self.message = message
        self.location = location
    }

    /// The same error with the file name filled in where it was unknown.
    public func inFile(_ file: String) -> SluiceError {
        var e = self
        if e.location == nil { e.location = SourceLocation(file: file) } else if e.location?.file == nil { e.location?.file = file }
        return e
    }
}

extension SluiceError {
    /// Whether trying the same thing again later can succeed (I/O, a busy database, a
    /// peer that is down) as opposed to a fault in the input or the request.
    public var isTransient: Bool {
        code == .io || code == .database || code == .constraint || code == .unavailable
    }
}

extension SluiceError: CustomStringConvertible {
    public var description: String {
        guard let location else { return message }
        var text = location.prefix
        if !text.isEmpty { text += ": " }
        text += message
        return text
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for bodies that throw ``SluiceError`` (the standard one rethrows untyped).
    @inlinable public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(SluiceError) -> R) throws(SluiceError) -> R {
        let r: Result<R, SluiceError> = withUnsafeBytes { b in Result { () throws(SluiceError) -> R in try body(b) } }
        return try r.get()
    }

    /// `withUnsafeMutableBytes` for bodies that throw ``SluiceError``.
    @inlinable public mutating func withMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws(SluiceError) -> R) throws(SluiceError) -> R {
        let r: Result<R, SluiceError> = withUnsafeMutableBytes { b in Result { () throws(SluiceError) -> R in try body(b) } }
        return try r.get()
    }
}
