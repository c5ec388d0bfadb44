public import SluiceCore
import SluiceFormats
public import SluiceQueue

/// A pipeline's `table:` source: the rows of a table in the target database (those matching
/// a filter), written in key order a page at a time to an NDJSON file the steps then read.
public enum TableDump {
    /// The ledger destination the dumps scan against: it never records keys, so every row
    /// matching the filter is read, each run.
    static let destination = "sluice:pipeline-table-source"

    /// Writes the rows to `path`; returns how many.
    public static func write(_ source: ExportSource, store: any ExportStore, to path: String) async throws(SluiceError) -> Int64 {
        try source.validate()
        let scan = try await store.scan(source, destinationID: try await store.destinationID(destination), resendChanged: false, pageSize: 10_000)
        defer { scan.close() }
        let sink = try FileSink(path: path)
        let writer = NDJSONBatchWriter(sink: sink, schema: scan.schema)
        while let page = try await scan.next() { try writer.write(page.batch) }
        try writer.finish()
        try sink.commit()
        return writer.rowsWritten
    }
}
