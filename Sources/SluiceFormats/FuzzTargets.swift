public import SluiceCore

/// Entry points for fuzzing the binary readers: open the bytes and read every row of
/// every column, with the schema the file declares. Hostile input must end in a thrown
/// ``SluiceError`` (returned here), never a crash, a hang, or an outsized allocation.
/// `steps` fuzzes the expression language and pipeline steps (``StepFuzzTarget``).
public enum FuzzTargets {
    /// The targets by name, as `sluice-fuzz` and `scripts/fuzz.sh` call them.
    public static let names = ["parquet", "avro", "steps", "delta"]

    /// Runs the target called `name` over one input.
    public static func run(_ name: String, _ bytes: [UInt8]) {
        switch name {
        case "avro": avro(bytes)
        case "steps": StepFuzzTarget.run(bytes)
        case "delta": delta(bytes)
        default: parquet(bytes)
        }
    }

    /// Reads a Parquet file completely; the error, if it failed.
    @discardableResult
    public static func parquet(_ bytes: [UInt8], batchRows: Int = 1000) -> SluiceError? {
        do throws(SluiceError) {
            let file = try ParquetFile(source: MemoryRandomAccess(bytes), fileName: "fuzz.parquet")
            let spec = ReadSpec(schema: TableSchema(columns: file.schema.columns), limits: ReadLimits(batchRows: batchRows), fileName: "fuzz.parquet")
            let reader = try ParquetBatchReader(file: file, spec: spec)
            while try reader.next() != nil {}
            return nil
        } catch {
            return error
        }
    }

    /// Reads an Avro object container file completely; the error, if it failed.
    @discardableResult
    public static func avro(_ bytes: [UInt8], batchRows: Int = 1000) -> SluiceError? {
        do throws(SluiceError) {
            let file = try AvroReader(source: MemoryChunkReader(bytes, chunkSize: 4096), fileName: "fuzz.avro")
            let spec = ReadSpec(schema: TableSchema(columns: file.columns), limits: ReadLimits(batchRows: batchRows), fileName: "fuzz.avro")
            let reader = try AvroBatchReader(file: file, spec: spec)
            while try reader.next() != nil {}
            return nil
        } catch {
            return error
        }
    }

    /// A Delta log entry replayed (its first byte 0), or a deletion vector decoded, serialized
    /// (1) or framed as in a file (2); the error, if it failed.
    @discardableResult
    public static func delta(_ bytes: [UInt8]) -> SluiceError? {
        guard let mode = bytes.first else { return nil }
        let body = Array(bytes.dropFirst())
        do throws(SluiceError) {
            switch mode % 3 {
            case 0:
                let actions = try DeltaLog.parseCommit(body, fileName: "fuzz.json")
                var builder = DeltaSnapshotBuilder()
                builder.applyCommit(version: 0, actions)
                try builder.protocolAction?.checkReadable()
                if let m = builder.metadata { _ = try DeltaSchema(parsing: m.schemaString).columns() }
                for f in builder.liveFiles {
                    _ = try DeltaLog.relativePath(f.path)
                    if let d = f.deletionVector {
                        if d.storageType == "u" { _ = try DeletionVector.relativePath(d) }
                        if d.storageType == "i", let raw = Z85.decode(d.pathOrInlineDv) { _ = try DeletionVector(serialized: Array(raw.prefix(d.sizeInBytes)), maxRows: d.cardinality) }
                    }
                }
            case 1: _ = try DeletionVector(serialized: body, maxRows: 1 << 20)
            default: _ = try DeletionVector(file: body, expectedSize: max(0, body.count - 8), maxRows: 1 << 20, fileName: "fuzz.bin")
            }
            return nil
        } catch {
            return error
        }
    }
}
