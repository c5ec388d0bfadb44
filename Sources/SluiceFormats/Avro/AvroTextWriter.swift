public import SluiceCore

/// Encodes records whose fields are all nullable strings (`["null", "string"]`) into Avro
/// container blocks, a record at a time: the parts a mapping splits JSON into. Values are
/// the fields' text, so a load coerces them exactly as it would the same CSV; no quoting,
/// escaping or scanning for delimiters on either side. Uncompressed: the parts are scratch.
public struct AvroTextWriter: Sendable {
    /// The file's header; blocks from ``flush()`` follow it.
    public let header: [UInt8]
    let sync: [UInt8]
    /// Records encoded since the last flush.
    public private(set) var pending: [UInt8] = []
    public private(set) var pendingRecords = 0

    /// Nil when a name is not an Avro name (letters, digits and `_`, not starting with a digit).
    public init?(fieldNames: [String], recordName: String = "row") {
        guard (fieldNames + [recordName]).allSatisfy(AvroWriter.validName) else { return nil }
        let schema = TableSchema(columns: fieldNames.map { ColumnSchema(name: $0, type: .text) })
        sync = AvroWriter.newSync()
        header = AvroWriter.header(schemaJSON: AvroWriter.schemaJSON(schema, recordName: recordName), codec: .null, sync: sync)
    }

    @inline(__always) public mutating func appendNull() { pending.append(0) }

    @inline(__always) public mutating func append(_ text: UnsafeRawBufferPointer) {
        pending.append(2)  // the union's second branch (zigzag 1)
        AvroWriter.long(Int64(text.count), into: &pending)
        pending.append(contentsOf: text)
    }

    @inline(__always) public mutating func endRecord() { pendingRecords += 1 }

    /// The pending records as one block (empty when there are none), and starts the next.
    public mutating func flush() -> [UInt8] {
        guard pendingRecords > 0 else { return [] }
        let out = AvroWriter.block(count: pendingRecords, body: pending, sync: sync)
        dropPending()
        return out
    }

    /// Forgets the records encoded since the last flush.
    public mutating func dropPending() {
        pending.removeAll(keepingCapacity: true)
        pendingRecords = 0
    }
}
