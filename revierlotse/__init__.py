"""Revierlotse: German career-advice chatbot for IT managers in Duisburg and the Ruhr area."""
