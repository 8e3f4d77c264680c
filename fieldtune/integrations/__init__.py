"""Retrievers that let RAG frameworks search a :class:`fieldtune.Index`.

* :mod:`fieldtune.integrations.langchain` - ``FieldtuneRetriever``, a LangChain ``BaseRetriever``
  (``pip install 'fieldtune[langchain]'``);
* :mod:`fieldtune.integrations.llamaindex` - ``FieldtuneRetriever``, a LlamaIndex ``BaseRetriever``
  (``pip install 'fieldtune[llamaindex]'``).

Each returns exactly what ``Index.search`` returns for the same options (ids, order, scores), so a
framework's chain sees fieldtune's ranking unchanged; :mod:`fieldtune.integrations.hits` holds what
the two share. This package imports neither framework: each module imports its own when imported.
"""
