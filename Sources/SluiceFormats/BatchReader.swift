public import SluiceCore

/// Rows decoded from a source: a batch of good rows, and the rows that were rejected
/// (each with its line, reason and original fields), in source order within each.
public struct DecodedBatch: Sendable {
    public var batch: RecordBatch
    public var rejects: [RowReject]
    public init(batch: RecordBatch, rejects: [RowReject]) {
        self.batch = batch
        self.rejects = rejects
    }
    /// Rows read from the source for this batch (good plus rejected).
    public var rowsRead: Int { batch.count + rejects.count }
}

/// A reader that turns a byte stream in some format into typed batches of a target schema.
public protocol BatchReader: AnyObject {
    /// Field names of the source as seen in the file (a CSV header, or the JSON paths used).
    var sourceFields: [String] { get }
    /// Names of the source's fields that no column reads (reported, not loaded).
    var unusedFields: [String] { get }
    /// Decompressed bytes consumed so far.
    var bytesConsumed: Int64 { get }
    /// The next batch, or nil at the end of the input. Throws only for file-level errors.
    func next() throws(SluiceError) -> DecodedBatch?
    /// Names of the fields a rejects file holds for this source (see ``RowReject/fields``).
    var rejectFields: [String] { get }
    /// A row's column values (as text) placed back where the source had them, for rows
    /// the target refused after decoding.
    func sourceRecord(columnValues: [String?]) -> [String?]
}

/// What a reader needs to know about its target: the columns to produce (each with its
/// source field), which columns form the key, and the op field when merging.
public struct ReadSpec: Sendable {
    public var schema: TableSchema
    /// Source field carrying the op (`D` deletes). Nil: every row is an upsert.
    public var opField: String?
    public var limits: ReadLimits
    public var fileName: String?
    /// Line number of the first byte read (a chunk of a larger file starts past line 1).
    public var firstLine: Int64
    /// Field names when the bytes read do not start with the file's header (a chunk).
    public var knownHeader: [String]?
    /// The zone of naive timestamps going into timestamptz columns (nil: UTC).
    public var naiveZone: NaiveTimeZone?
    /// How a text file's lines make records (`format: text`).
    public var textRecords = TextRecords.line

    public init(schema: TableSchema, opField: String? = nil, limits: ReadLimits = ReadLimits(), fileName: String? = nil,
                firstLine: Int64 = 1, knownHeader: [String]? = nil) {
        self.schema = schema
        self.opField = opField
        self.limits = limits
        self.fileName = fileName
        self.firstLine = firstLine
        self.knownHeader = knownHeader
    }
}
