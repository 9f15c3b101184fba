"""Knowledge bases (RAG): ingestion, loaders, chunking, keyword and dense indexes, hybrid
fusion, reranking and the vectorless tree. Import the submodules directly."""
